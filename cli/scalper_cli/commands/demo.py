"""``scalper demo``: the whole local loop in one command (implementation in :mod:`scalper_cli.demo`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from scalper_cli.demo import DemoPlan, run_demo
from scalper_cli.settings import StackSettings
from scalper_shared.settings import load_settings


def demo(
    keep_up: Annotated[bool, typer.Option("--keep-up", help="Leave the stack running afterwards")] = False,
    timesteps: Annotated[int, typer.Option(help="Training steps")] = DemoPlan.timesteps,
) -> None:
    """Stack up, synthetic market, train, evaluate, promote, one paper day, honest summary, stack down.

    Uses REDIS_URL / DATABASE_URL when they answer, else embedded servers under SCALPER_VAR_DIR.
    Needs no API key: it makes an admin key for this run and gives the services its hash.
    Exits 0 when the loop ran (a losing agent or differing paper trades are reported, not failures),
    1 when a step failed (the stack is brought down either way, unless --keep-up).
    """
    if timesteps <= 0:
        raise typer.BadParameter("--timesteps must be positive")
    if not run_demo(load_settings(StackSettings), Console(), plan=DemoPlan(timesteps=timesteps), keep_up=keep_up):
        typer.secho("demo failed: see the failed step above", fg="red", err=True)
        raise typer.Exit(1)
