"""End-to-end tests against the test bed (a package, so that its conftest does not
shadow tests/conftest.py as the module ``conftest``)."""
