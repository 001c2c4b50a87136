"""The paper day printed: paper and backtest trades side by side (``scalper paper``, the demo)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from scalper_trainer.evaluation.paper import PaperResult, PaperTrade

console = Console()


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
        either = p or b
        symbol = either.symbol if either is not None else "-"
        mark = "" if first is None or i < first.index else ("<- first difference" if i == first.index else "")
        table.add_row(str(i), symbol, *_cells(p), *_cells(b), mark)
    console.print(table)
    console.print(f"{result.minutes} minutes ({result.bars} bars) in {result.seconds:.1f}s; "
                  f"paper P&L {result.paper_pnl:,.2f}, backtest P&L {result.backtest_pnl:,.2f} "
                  f"(namespace {result.namespace}, database {result.database})", highlight=False)
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
