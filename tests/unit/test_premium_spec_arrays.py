"""The precomputed per-row option specs give the same quotes as symbol names (the env's fast path)."""

from __future__ import annotations

import numpy as np
import pytest

from scalper_shared.core.premium import (
    atm_strike,
    implied_vol,
    quote,
    quote_at_vol,
    symbol_spec_arrays,
    time_to_expiry_years,
)

SYMBOLS = ["SPY", "I:SPX", "QQQ", "SPX", "SPY"]
SPOT = np.array([501.37, 5012.4, 433.5, 4998.0, 499.99])


def test_spec_arrays_quote_like_symbol_names() -> None:
    specs = symbol_spec_arrays(SYMBOLS)
    strikes = atm_strike(SYMBOLS, SPOT)
    np.testing.assert_array_equal(atm_strike(specs, SPOT), strikes)
    right = np.array([True, False, True, True, False])
    minutes, vol, minute_of_day = np.array([300, 120, 45, 5, 389.0]), np.full(5, 0.18), np.array([90, 270, 345, 385, 1.0])
    expected = quote(SYMBOLS, SPOT, strikes, right, minutes, vol, minute_of_day)
    got = quote_at_vol(specs, SPOT, strikes, right, time_to_expiry_years(minutes),
                       implied_vol(vol, minute_of_day))
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_spec_arrays_take_selects_rows_and_unknown_symbols_are_refused() -> None:
    specs = symbol_spec_arrays(SYMBOLS)
    assert specs.take(np.array([1, 1, 0])).strike_step.tolist() == [5.0, 5.0, 1.0]
    with pytest.raises(ValueError, match="AAPL"):
        symbol_spec_arrays(["SPY", "AAPL"])
