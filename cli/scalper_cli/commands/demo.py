"""``scalper demo``: the whole local loop in one command (implementation in :mod:`scalper_cli.demo`)."""

from __future__ import annotations

import typer
from rich.console import Console

from scalper_cli.demo import run_demo
from scalper_cli.settings import StackSettings
from scalper_shared.settings import load_settings


def demo() -> None:
    """Bring the stack up, check every service, run the data flow, summarise, bring the stack down.

    Uses REDIS_URL / DATABASE_URL when they answer, else embedded servers under SCALPER_VAR_DIR.
    Exits 0 when every step passed, 1 otherwise (the stack is brought down either way).
    """
    if not run_demo(load_settings(StackSettings), Console()):
        typer.secho("demo failed: see the failed step above", fg="red", err=True)
        raise typer.Exit(1)
