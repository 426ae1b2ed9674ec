"""The remote lifecycle of a server on a virtual node: progress and fast failure."""
