"""Availability: what is free on the virtual nodes (pure counting), the node watcher,
admission and reservations of spawns, and the form's availability endpoint."""
