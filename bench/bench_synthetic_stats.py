"""Real vs synthetic market statistics (regular hours), side by side, and the generator's speed.

Real: SPY 2025-07..10 and QQQ 2025-08..10 minute bars from ``../shared/data`` (or
``SCALPER_SHARED_DATA``). Synthetic: the embedded market over the same dates, seed 0, without and
with the planted ``momentum`` edge (``edge SPY`` / ``edge QQQ``): the edge must not show in the table.
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import pandas as pd

from scalper_ingestion.market_stats import compute_stats, regular_hours, return_correlation, stats_rows
from scalper_ingestion.sources.files import PolygonFileSource
from scalper_shared.core.edge import MarketEdge
from scalper_shared.core.synthetic import QQQ, SPX, SPY, generate_bars

DATA = Path(os.environ.get("SCALPER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REAL_FILES = {SPY: ("SPY_1m_2025-07.csv.gz", "SPY_1m_2025-08_2025-10.csv.gz"),
              QQQ: ("QQQ_1m_2025-08_2025-10.csv.gz",)}
WINDOW = (date(2025, 7, 1), date(2025, 10, 31))
SEED = 0


def read_real(symbol: str, data: Path = DATA) -> pd.DataFrame:
    """The real bars of ``symbol`` from the shared data folder (one frame, duplicates dropped)."""
    frames = [batch for name in REAL_FILES[symbol] for batch in PolygonFileSource(data / name, symbol).batches()]
    return pd.concat(frames, ignore_index=True).drop_duplicates(subset=["start"]).reset_index(drop=True)


def _format(value: float | None) -> str:
    return f"{'n/a':>10}" if value is None or value != value else f"{value:10.3f}"


def main() -> None:
    real = {symbol: read_real(symbol) for symbol in (SPY, QQQ)}
    started = time.perf_counter()
    synthetic = pd.concat(generate_bars((SPY, QQQ, SPX), *WINDOW, SEED), ignore_index=True)
    elapsed = time.perf_counter() - started
    sessions = synthetic["start"].dt.tz_convert("America/New_York").dt.date.nunique()
    print(f"generated {len(synthetic):,} bars, {sessions} sessions x 3 symbols in {elapsed:.2f}s "
          f"({elapsed / sessions * 21:.2f}s per 21-session month)")
    by_symbol = {symbol: synthetic[synthetic["symbol"] == symbol] for symbol in (SPY, QQQ, SPX)}
    edged = pd.concat(generate_bars((SPY, QQQ), *WINDOW, SEED, MarketEdge.MOMENTUM), ignore_index=True)
    columns = {"real SPY": compute_stats(real[SPY]), "real QQQ": compute_stats(real[QQQ]),
               "synth SPY": compute_stats(by_symbol[SPY]), "synth QQQ": compute_stats(by_symbol[QQQ]),
               "synth SPX": compute_stats(by_symbol[SPX]),
               "edge SPY": compute_stats(edged[edged["symbol"] == SPY]),
               "edge QQQ": compute_stats(edged[edged["symbol"] == QQQ])}
    print(f"{'statistic':<24}" + "".join(f"{name:>10}" for name in columns))
    for name, values in stats_rows(columns):
        print(f"{name:<24}" + "".join(_format(v) for v in values))
    rth = {symbol: regular_hours(frame) for symbol, frame in by_symbol.items()}
    real_corr = return_correlation(regular_hours(real[SPY]), regular_hours(real[QQQ]))
    print(f"{'corr SPY~QQQ 1m':<24}{_format(real_corr)}{_format(None)}"
          f"{_format(return_correlation(rth[SPY], rth[QQQ]))}")
    print(f"{'corr SPY~SPX 1m':<24}{_format(None)}{_format(None)}{_format(return_correlation(rth[SPY], rth[SPX]))}")
    for symbol, regular in rth.items():
        print(f"synth {symbol} regular close range {regular['close'].min():.2f} .. {regular['close'].max():.2f}")


if __name__ == "__main__":
    main()
