"""Jinja2 templates shipped with offload_spawner (the spawn form).

This directory is installed as the ``offload_spawner.templates`` package so that
the templates travel inside the wheel and are found with importlib.resources.
"""
