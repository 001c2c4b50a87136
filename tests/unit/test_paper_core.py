"""Paper mode's pure parts: the trade comparison."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from scalper_cli import demo, paper_services
from scalper_cli.commands import paper as paper_command
from scalper_cli.main import app
from scalper_trainer.evaluation.paper import PaperResult, PaperTrade, compare_trades, first_difference

TRADE = PaperTrade("SPY", 1, 40, 52, "stop", 1.25, (1.05,), 10, -212.0)


def test_identical_trade_lists_have_no_difference() -> None:
    assert compare_trades([TRADE], [replace(TRADE)]) == []


def test_every_differing_field_is_named() -> None:
    other = replace(TRADE, exit_row=53, exit_prices=(1.00,), pnl=-262.0)
    differences = compare_trades([TRADE], [other])
    assert any("exit_row" in d for d in differences)
    assert any("exit prices" in d for d in differences)
    assert any("pnl" in d for d in differences)


def test_a_missing_trade_is_reported() -> None:
    assert compare_trades([TRADE], []) == ["1 paper trades vs 0 backtest trades"]


def test_the_first_difference_names_the_trade_the_field_and_a_cause() -> None:
    later = replace(TRADE, symbol="SPY", entry_row=90, exit_row=95)
    first = first_difference([TRADE, later], [TRADE, replace(later, exit_reason="tp1", exit_row=96)])
    assert first is not None and (first.index, first.field) == (1, "exit_row")
    assert "trade 1: exit_row differs" in first.describe() and first.cause
    missing = first_difference([TRADE], [TRADE, later])
    assert missing is not None and (missing.index, missing.field, missing.paper) == (1, "missing", None)
    assert first_difference([TRADE], [replace(TRADE)]) is None


def forced_mismatch(*_args: object, **_kwargs: object) -> PaperResult:
    return PaperResult("model-x", date(2025, 8, 21), 390, 780, 1.0, [TRADE],
                       [replace(TRADE, exit_reason="end_of_day")], latencies_ms=[2.0, 4.0])


def test_scalper_paper_exits_non_zero_naming_the_first_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paper_command, "paper_request", lambda *args: None)
    monkeypatch.setattr(paper_command, "run_paper", forced_mismatch)
    result = CliRunner().invoke(app, ["paper", "--model", "model-x", "--date", "2025-08-21"])
    assert result.exit_code == 1, result.output
    assert "first difference: trade 0: exit_reason differs" in " ".join(result.output.split())
    assert "p50 3.0 ms, p99 4.0 ms" in result.output


def test_scalper_paper_says_in_one_line_why_a_day_cannot_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["paper", "--model", str(tmp_path), "--date", "2025-08-21"])
    assert result.exit_code == 1
    assert "paper: no model artifact" in result.output and "Traceback" not in result.output


def test_the_demo_fails_when_paper_parity_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paper_services, "run_paper_day", forced_mismatch)
    ctx = SimpleNamespace(redis_url="redis://x", database_url="postgresql://x",
                          settings=SimpleNamespace(stream_prefix="p:", stream_maxlen=10),
                          facts=demo.DemoFacts(model_id="model-x", artifact_dir=Path(".")),
                          plan=demo.DemoPlan(paper_day=date(2025, 8, 21)))
    with pytest.raises(demo.DemoError, match="first difference: trade 0: exit_reason differs"):
        demo.paper_day(ctx)  # type: ignore[arg-type]
