"""Dask clusters started from a server: their configuration (pure) and the server's Dask files."""
