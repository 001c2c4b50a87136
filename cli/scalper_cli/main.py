"""``scalper``: one command line for the local stack, data, features, training and evaluation."""

from __future__ import annotations

import typer

app = typer.Typer(help="Scalper: 0DTE options scalping agent, from data to paper trading.",
                  no_args_is_help=True)


@app.callback()
def _root() -> None:
    """Scalper command line."""


if __name__ == "__main__":
    app()
