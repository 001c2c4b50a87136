"""``scalper``: one command line for the local stack, data, features, training and evaluation.

This root only mounts sub-apps; each lives in its own module under ``scalper_cli.commands``.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from scalper_cli.commands import data as data_command
from scalper_cli.commands import demo as demo_command
from scalper_cli.commands import eval as eval_command
from scalper_cli.commands import features as features_command
from scalper_cli.commands import ingest as ingest_command
from scalper_cli.commands import keys as keys_command
from scalper_cli.commands import paper as paper_command
from scalper_cli.commands import premium as premium_command
from scalper_cli.commands import reward as reward_command
from scalper_cli.commands import risk as risk_command
from scalper_cli.commands import stack as stack_command
from scalper_cli.commands import train as train_command

app = typer.Typer(help="Scalper: 0DTE options scalping agent, from data to paper trading.",
                  no_args_is_help=True)
app.add_typer(stack_command.app, name="stack")
app.add_typer(train_command.app, name="train")
app.add_typer(features_command.app, name="features")
app.add_typer(ingest_command.app, name="ingest")
app.add_typer(data_command.app, name="data")
app.add_typer(risk_command.app, name="risk")
app.add_typer(keys_command.app, name="keys")
app.add_typer(eval_command.app, name="eval")
app.add_typer(premium_command.app, name="premium")
app.add_typer(reward_command.app, name="reward")
app.command("demo")(demo_command.demo)
app.command("paper")(paper_command.paper)


def configure_cli_logging(verbose: bool) -> None:
    """Log lines to stderr (the CLI's progress), INFO by default, DEBUG with --verbose."""
    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "pgserver", "asyncio", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging")] = False) -> None:
    """Scalper command line."""
    configure_cli_logging(verbose)


if __name__ == "__main__":
    app()
