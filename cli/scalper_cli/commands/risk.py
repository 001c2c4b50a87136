"""``scalper risk``: the execution service's kill switch and trading state, over its REST API.

Talks to ``SCALPER_EXECUTION_URL`` (default ``http://127.0.0.1:8003``) with ``SCALPER_API_KEY``
(the ``trade`` scope for halt/reduce/resume/flatten, ``read`` for state).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scalper_cli.api_client import ApiClientSettings, checked, client
from scalper_shared.schema.execution import RiskStateView
from scalper_shared.settings import load_settings

app = typer.Typer(help=__doc__, no_args_is_help=True)
console = Console()
Reason = Annotated[str, typer.Option("--reason", help="Why (stored with the risk event)")]


def _post(path: str, reason: str) -> RiskStateView:
    settings = load_settings(ApiClientSettings)
    with client(settings, settings.execution_url) as http:
        return RiskStateView.model_validate(checked(http.post(f"/v1/risk/{path}", json={"reason": reason})))


def _show(view: RiskStateView) -> None:
    table = Table(title="risk state", show_header=False)
    table.add_row("trading_state", str(view.trading_state))
    for name, dollars in (("pnl_today", view.pnl_today), ("realised_pnl_today", view.realised_pnl_today)):
        table.add_row(name, f"{dollars:,.2f}")  # dollars to the cent
    for name, count in (("trades_today", view.trades_today), ("open_positions", view.open_positions),
                        ("open_orders", view.open_orders)):
        table.add_row(name, str(count))
    console.print(table)


@app.command()
def state() -> None:
    """Show the trading state, today's P&L and open positions/orders."""
    settings = load_settings(ApiClientSettings)
    with client(settings, settings.execution_url) as http:
        _show(RiskStateView.model_validate(checked(http.get("/v1/risk/state"))))


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
