"""The ``searchsage`` command line."""
