"""The fast md.bars encoder writes exactly what the schema codec writes, with deterministic ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from scalper_ingestion.envelopes import encode_bar_envelopes, envelope_ids
from scalper_ingestion.sources.base import conform_bars
from scalper_shared.clock import FakeClock
from scalper_shared.schema import CODEC, Bar, make_envelope

START = pd.Timestamp("2025-07-01 13:30", tz="UTC")
TS_INIT = datetime(2025, 7, 1, 13, 31, 0, 123456, tzinfo=UTC)


def _bars() -> pd.DataFrame:
    return conform_bars(pd.DataFrame({
        "symbol": ["SPY", "I:SPX", "QQQ", "SPY"],
        "start": [START, START, START + pd.Timedelta(minutes=1), pd.Timestamp("2025-12-31 23:59", tz="UTC")],
        "open": [617.68, 6204.95, 0.1 + 0.2, 617.0],
        "high": [618.0, 6210.0, 0.5, 617.0],
        "low": [617.0, 6200.12, 0.1, 617.0],
        "close": [617.5, 6205.5, 0.3, 617.0],
        "volume": [6873.0, np.nan, 1e-7, 12345678901.0],
        "vwap": [617.4, np.nan, 0.25, np.nan],
        "trade_count": [12, pd.NA, 0, pd.NA],
        "session": ["regular", "regular", "regular", "post"],
        "source": ["file", "polygon_rest", 'we"ird\\src', "synthetic"],
    }))


def _codec_bytes(row: pd.Series, envelope_id: str) -> bytes:
    def optional(value: object) -> object:
        return None if pd.isna(value) else value

    bar = Bar(symbol=row["symbol"], start=row["start"].to_pydatetime(), open=row["open"], high=row["high"],
              low=row["low"], close=row["close"], volume=optional(row["volume"]), vwap=optional(row["vwap"]),
              trade_count=None if pd.isna(row["trade_count"]) else int(row["trade_count"]),
              session=row["session"], source=row["source"])
    envelope = make_envelope(bar, source="ingestion", clock=FakeClock(TS_INIT), ids=lambda: envelope_id,
                             ts_event=bar.start + timedelta(minutes=1))
    return CODEC.encode(envelope)


def test_fast_encoding_is_byte_identical_to_the_schema_codec() -> None:
    bars = _bars()
    fast = encode_bar_envelopes(bars, source="ingestion", ts_init=TS_INIT)
    ids = envelope_ids(bars)
    for position, row in bars.iterrows():
        assert fast[position] == _codec_bytes(row, ids[position])


def test_encoded_envelopes_decode_to_valid_bars() -> None:
    decoded = [CODEC.decode(data) for data in encode_bar_envelopes(_bars(), source="ingestion", ts_init=TS_INIT)]
    assert [e.payload.symbol for e in decoded] == ["SPY", "I:SPX", "QQQ", "SPY"]
    assert decoded[1].payload.volume is None and decoded[1].payload.trade_count is None
    assert decoded[0].ts_event == START + pd.Timedelta(minutes=1)


def test_id_is_stable_per_bar_version_and_changes_with_a_correction() -> None:
    bars = _bars()
    again = envelope_ids(_bars())
    assert envelope_ids(bars) == again
    assert again[0].startswith("bar:SPY:1751376600000:")
    corrected = bars.copy()
    corrected.loc[0, "close"] = 617.51
    changed = envelope_ids(corrected)
    assert changed[0] != again[0] and changed[1:] == again[1:]


def test_source_does_not_change_the_id_of_a_bar_version() -> None:
    bars = _bars()
    relabelled = bars.assign(source="replay")
    assert envelope_ids(relabelled) == envelope_ids(bars)


def test_bars_off_the_minute_are_refused() -> None:
    bars = _bars()
    bars.loc[0, "start"] = START + pd.Timedelta(seconds=30)
    with pytest.raises(ValueError, match="whole minutes"):
        encode_bar_envelopes(bars, source="ingestion", ts_init=TS_INIT)
