"""The feature store: one npz per symbol-day under the spec hash; what is written is what is read."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from scalper_shared.core.features import FEATURE_SPEC, N_MARKET
from scalper_shared.core.features.store import (
    FeatureDay,
    day_path,
    load_feature_days,
    stored_days,
    write_feature_day,
    write_spec,
)


def feature_day(symbol: str, day: date, n: int = 5, spec_hash: str = FEATURE_SPEC.spec_hash) -> FeatureDay:
    rng = np.random.default_rng(n)
    return FeatureDay(symbol=symbol, day=day, spec_hash=spec_hash, minutes=np.arange(n, dtype=np.int64) * 60_000,
                      values=rng.normal(size=(n, N_MARKET)), close=rng.uniform(1, 2, n), high=rng.uniform(2, 3, n),
                      low=rng.uniform(0, 1, n), real=np.arange(n) % 3 != 1,
                      minutes_to_close=np.arange(n, 0, -1, dtype=np.int32))


def test_a_written_day_reads_back_identical(tmp_path: Path) -> None:
    written = feature_day("I:SPX", date(2025, 8, 12))
    path = write_feature_day(tmp_path, written)
    assert path == tmp_path / FEATURE_SPEC.spec_hash[:16] / "I_SPX" / "2025-08-12.npz"
    [read] = load_feature_days(tmp_path, ["I:SPX"], date(2025, 8, 12), date(2025, 8, 12))
    assert (read.symbol, read.day, read.spec_hash) == ("I:SPX", date(2025, 8, 12), FEATURE_SPEC.spec_hash)
    for name in ("minutes", "values", "close", "high", "low", "real", "minutes_to_close"):
        np.testing.assert_array_equal(getattr(read, name), getattr(written, name))
        assert getattr(read, name).dtype == getattr(written, name).dtype


def test_days_load_in_day_then_symbol_order_and_missing_days_are_skipped(tmp_path: Path) -> None:
    for day in (date(2025, 8, 12), date(2025, 8, 14)):
        for symbol in ("QQQ", "SPY"):
            write_feature_day(tmp_path, feature_day(symbol, day))
    write_feature_day(tmp_path, feature_day("SPY", date(2025, 8, 20)))
    loaded = load_feature_days(tmp_path, ["SPY", "QQQ"], date(2025, 8, 12), date(2025, 8, 15))
    assert [(d.day.day, d.symbol) for d in loaded] == [(12, "SPY"), (12, "QQQ"), (14, "SPY"), (14, "QQQ")]
    assert stored_days(tmp_path, "SPY") == [date(2025, 8, 12), date(2025, 8, 14), date(2025, 8, 20)]


def test_another_spec_lives_apart_and_a_mislabelled_file_is_refused(tmp_path: Path) -> None:
    other = "f" * 64
    write_feature_day(tmp_path, feature_day("SPY", date(2025, 8, 12), spec_hash=other))
    assert load_feature_days(tmp_path, ["SPY"], date(2025, 8, 12), date(2025, 8, 12)) == []
    assert len(load_feature_days(tmp_path, ["SPY"], date(2025, 8, 12), date(2025, 8, 12), spec_hash=other)) == 1
    wrong = day_path(tmp_path, "SPY", date(2025, 8, 12))
    wrong.parent.mkdir(parents=True)
    day_path(tmp_path, "SPY", date(2025, 8, 12), other).rename(wrong)
    with pytest.raises(ValueError, match="holds spec fff"):
        load_feature_days(tmp_path, ["SPY"], date(2025, 8, 12), date(2025, 8, 12))


def test_the_spec_file_records_the_full_hash(tmp_path: Path) -> None:
    import json

    body = json.loads(write_spec(tmp_path).read_text())
    assert body["spec_hash"] == FEATURE_SPEC.spec_hash
    assert [f["name"] for f in body["spec"]["features"]] == list(FEATURE_SPEC.names)
