"""Paper mode's pure parts: the trade comparison."""

from __future__ import annotations

from dataclasses import replace

from scalper_cli.paper import PaperTrade, compare_trades

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
