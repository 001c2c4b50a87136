"""The ``scalper`` command line."""
