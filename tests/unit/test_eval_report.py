"""The report's header sentence says plainly what happened."""

from __future__ import annotations

from typing import Any

from scalper_trainer.evaluation.report import verdict


def _mine(total: float) -> dict[str, Any]:
    return {"days": 5, "symbol_days": 10, "performance": {"total_pnl": total, "trades": 40}}


def _significance(low: float, high: float) -> dict[str, Any]:
    return {"best_baseline": "hold", "best_baseline_total_pnl": 0.0, "mean_daily_difference": (low + high) / 2,
            "ci_low": low, "ci_high": high, "ci_includes_zero": low <= 0 <= high}


def test_a_losing_agent_is_reported_as_losing_and_a_ci_over_zero_as_no_evidence() -> None:
    text = verdict(_mine(-1234.5), _significance(-400.0, 50.0))
    assert text.startswith("The agent LOST $1,234.50 over 5 days (10 symbol-days, 40 trades, after costs).")
    assert "Best baseline: hold ($0.00)" in text and "includes 0 -> no evidence of skill" in text


def test_an_agent_worse_than_its_best_baseline_is_called_worse() -> None:
    assert "did WORSE than the best baseline" in verdict(_mine(-10.0), _significance(-9.0, -1.0))


def test_only_an_interval_above_zero_is_called_beating_the_baseline() -> None:
    text = verdict(_mine(500.0), _significance(10.0, 150.0))
    assert text.startswith("The agent MADE $500.00") and "beat the best baseline" in text
