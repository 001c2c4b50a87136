"""``scalper paper``: one stored day through the running stack's live services, against the backtest.

Promotes ``--model`` over REST (``SCALPER_API_URL``, ``SCALPER_API_KEY`` with the admin scope), waits
until the policy serves it, replays ``--date`` in lockstep at ``--speed`` (see :mod:`scalper_cli.paper`),
then prints the trades, the comparison with the offline backtest and the bar-to-order latency.
Exits 1 when the paper trades differ from the backtest, naming the first differing trade and its cause.
The paper/parity logic is :mod:`scalper_trainer.evaluation.paper`; this module only calls and prints it.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scalper_cli import stack
from scalper_cli.api_client import ApiClientSettings, checked, client
from scalper_cli.settings import StackSettings
from scalper_ingestion.replay import parse_speed, replay_days
from scalper_shared.settings import load_settings
from scalper_trainer.evaluation.paper import PaperResult, PaperTarget, PaperTrade, run_paper_day

console = Console()


def promote_and_wait(model_id: str, timeout_s: float = 60.0) -> Path:
    """Promote ``model_id`` and wait until the policy serves it; returns its artifact directory."""
    with client(load_settings(ApiClientSettings)) as http:
        view = checked(http.post(f"/v1/models/{model_id}/promote"))
        deadline = time.monotonic() + timeout_s
        while checked(http.get("/v1/policy/model")).get("model_id") != model_id:
            if time.monotonic() > deadline:
                raise typer.BadParameter(f"the policy did not serve {model_id} within {timeout_s:.0f}s")
            time.sleep(0.5)
    return Path(view["artifact_path"])


def target_of_stack(artifact_dir: Path) -> PaperTarget:
    from scalper_features.settings import FeaturesSettings

    settings = load_settings(StackSettings)
    state = stack.load_state(settings)
    if state is None:
        raise typer.BadParameter("the stack is not up (scalper stack up)")
    features = load_settings(FeaturesSettings)
    return PaperTarget(state.infrastructure.redis_url, state.infrastructure.database_url, settings.stream_prefix,
                       features.symbol_list, artifact_dir,
                       stream_maxlen=settings.stream_maxlen)


def _cells(trade: PaperTrade | None) -> list[str]:
    if trade is None:
        return ["-"] * 6
    return [f"{'call' if trade.side > 0 else 'put'} {trade.contracts}", str(trade.entry_row), str(trade.exit_row),
            trade.exit_reason, f"{trade.entry_price:.2f} -> " + " ".join(f"{p:.2f}" for p in trade.exit_prices),
            f"{trade.pnl:,.2f}"]


def render(result: PaperResult) -> None:
    """Paper and backtest trades side by side (a row per trade index), the first difference and its
    cause, and the bar-to-order latency."""
    table = Table(title=f"paper {result.day} with {result.model_id}: {len(result.paper)} paper trades, "
                        f"{len(result.backtest)} backtest trades")
    table.add_column("#")
    table.add_column("symbol")
    for side in ("paper", "backtest"):
        for column in ("side", "entry", "exit", "reason", "premium", "P&L"):
            table.add_column(f"{side} {column}")
    table.add_column("")
    first = result.first_difference
    for i in range(max(len(result.paper), len(result.backtest))):
        p = result.paper[i] if i < len(result.paper) else None
        b = result.backtest[i] if i < len(result.backtest) else None
        symbol = (p or b).symbol if (p or b) is not None else "-"  # type: ignore[union-attr]
        mark = "" if first is None or i < first.index else ("<- first difference" if i == first.index else "")
        table.add_row(str(i), symbol, *_cells(p), *_cells(b), mark)
    console.print(table)
    console.print(f"{result.minutes} minutes ({result.bars} bars) in {result.seconds:.1f}s; "
                  f"paper P&L {sum(t.pnl for t in result.paper):,.2f}, "
                  f"backtest P&L {sum(t.pnl for t in result.backtest):,.2f}", highlight=False)
    p50, p99 = result.latency_percentile(50), result.latency_percentile(99)
    if p50 is not None and p99 is not None:
        console.print(f"bar -> order latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                      f"({len(result.latencies_ms)} orders)", highlight=False)
    else:
        console.print("bar -> order latency: no orders", highlight=False)
    if first is None:
        console.print("[green]parity: paper trades equal the backtest exactly[/]")
    else:
        console.print("[red]parity: paper trades differ from the backtest[/]")
        console.print("first difference: " + first.describe(), highlight=False, markup=False)


def paper(
    model: Annotated[str, typer.Option("--model", help="Model id to promote and trade")],
    day: Annotated[str, typer.Option("--date", help="Stored day to replay (YYYY-MM-DD)")],
    speed: Annotated[str, typer.Option(help="Replay speed factor, or max")] = "max",
) -> None:
    """Replay a stored day through the live services (paper broker) and compare with the backtest."""
    artifact_dir = promote_and_wait(model)
    result = run_paper_day(target_of_stack(artifact_dir), model, date.fromisoformat(day), parse_speed(speed),
                           replay=replay_days)
    render(result)
    if not result.exact:
        raise typer.Exit(1)
