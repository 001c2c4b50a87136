"""``scalper risk``: the execution service's kill switch and trading state, over its REST API.

Talks to ``SCALPER_EXECUTION_URL`` (default ``http://127.0.0.1:8003``) with ``SCALPER_API_KEY``
(the ``trade`` scope for halt/reduce/resume/flatten, ``read`` for state).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scalper_cli.api_client import ApiClientSettings, checked, client
from scalper_shared.settings import load_settings

app = typer.Typer(help=__doc__, no_args_is_help=True)
console = Console()
Reason = Annotated[str, typer.Option("--reason", help="Why (stored with the risk event)")]


def _post(path: str, reason: str) -> dict[str, Any]:
    settings = load_settings(ApiClientSettings)
    with client(settings, settings.execution_url) as http:
        return checked(http.post(f"/v1/risk/{path}", json={"reason": reason}))


def _show(view: dict[str, Any]) -> None:
    table = Table(title="risk state", show_header=False)
    for key in ("trading_state", "pnl_today", "realised_pnl_today", "trades_today", "open_positions",
                "open_orders"):
        value = view.get(key)
        table.add_row(key, f"{value:,.2f}" if isinstance(value, float) else str(value))  # dollars to the cent
    console.print(table)


@app.command()
def state() -> None:
    """Show the trading state, today's P&L and open positions/orders."""
    settings = load_settings(ApiClientSettings)
    with client(settings, settings.execution_url) as http:
        _show(checked(http.get("/v1/risk/state")))


@app.command()
def halt(reason: Reason = "operator halt") -> None:
    """HALTED: no new entries; exits still allowed."""
    _show(_post("halt", reason))


@app.command()
def reduce(reason: Reason = "operator reduce-only") -> None:
    """REDUCING: only orders that reduce positions."""
    _show(_post("reduce", reason))


@app.command()
def resume(reason: Reason = "operator resume") -> None:
    """ACTIVE again."""
    _show(_post("resume", reason))


@app.command()
def flatten(reason: Reason = "operator kill switch") -> None:
    """Kill switch: cancel every open order, flatten every position, then HALTED."""
    _show(_post("flatten", reason))
