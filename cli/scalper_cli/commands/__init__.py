"""Typer sub-apps of the ``scalper`` command line, one module each; ``scalper_cli.main`` mounts them."""
