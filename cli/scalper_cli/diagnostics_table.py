"""The checkpoint-diagnostics table that ``scalper train`` (REST or ``--local``) and the demo print."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from scalper_shared.schema.training import Diagnostics

COLUMNS = ("step", "updates", "approx_kl", "P(HOLD)", "P(BUY)", "entropy", "setup BUY", "non-setup BUY",
           "trades/acct-day", "P&L/acct-day", "seed criteria")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def render_diagnostics(console: Console, diagnostics: Sequence[Diagnostics], warnings: Sequence[str],
                       title: str) -> None:
    """One row per checkpoint: probabilities on decision steps (flat, entry allowed), PPO's approx_kl,
    after-cost P&L on the validation set, and how many of the seed run's three criteria pass."""
    table = Table(title=title, caption="P(.) are mean probabilities on decision steps (flat, entry allowed); "
                                       "a uniform policy shows P(HOLD) 33% and P(BUY) 67%: only the setup vs "
                                       "non-setup BUY rates show learning (docs/diagnostics.md)")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for d in diagnostics:
        kl = "-" if d.ppo.approx_kl is None else f"{d.ppo.approx_kl:.1e}"
        entropy = "-" if d.entropy is None else f"{d.entropy:.3f}"
        passed = sum(d.seed_criteria.values())
        table.add_row(f"{d.step:,}", f"{d.ppo.updates:,}", kl, _pct(d.hold_share), _pct(d.buy_share), entropy,
                      _pct(d.setup_buy_rate), _pct(d.nonsetup_buy_rate), f"{d.trades_per_account_day:.1f}",
                      f"{d.pnl_per_account_day:,.0f}", f"{passed}/{len(d.seed_criteria)}")
    console.print(table)
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
