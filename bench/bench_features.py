"""Feature core: batch speed for one symbol-year, incremental cost per bar, agreement on real data.

The symbol-year is 252 regular sessions of 2024 filled with the real SPY sessions of ../shared/data
(repeated in order, shifted onto 2024 dates): ~98,000 one-minute bars of real price paths.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from scalper_shared.core.calendar import trading_days
from scalper_shared.core.features import FEATURE_SPEC, BarArrays, IncrementalFeatures, firing_rates
from scalper_shared.core.features.agreement import batch_symbols, differences, stream_symbols
from scalper_shared.core.features.batch import session_features
from scalper_shared.core.features.sessions import split_sessions

DATA = Path(os.environ.get("SCALPER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _symbol_year() -> BarArrays:
    real = [s for s in split_sessions(BarArrays.concat([BarArrays.from_csv(DATA / "SPY_1m_2025-07.csv.gz"),
                                                        BarArrays.from_csv(DATA / "SPY_1m_2025-08_2025-10.csv.gz")]))
            if len(s.bars) == 390 and s.first_minute == 0]
    parts = []
    for i, day in enumerate(d for d in trading_days(*_year()) if d.regular_minutes == 390):
        source = real[i % len(real)].bars
        shift = int(day.open.timestamp() * 1000) - int(source.t[0])
        parts.append(BarArrays(source.t + shift, source.o, source.h, source.l, source.c, source.v))
    return BarArrays(*(np.concatenate([getattr(p, k) for p in parts]) for k in "tohlcv"))


def _year():  # type: ignore[no-untyped-def]
    from datetime import date
    return date(2024, 1, 1), date(2024, 12, 31)


def _best(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def bench_batch(bars: BarArrays) -> None:
    sessions = split_sessions(bars)
    compute = _best(lambda: session_features(sessions))
    total = _best(lambda: session_features(split_sessions(bars)), repeat=3)
    print(f"batch: {len(bars):,} bars, {len(sessions)} sessions: features {compute:.3f} s "
          f"(with session split and gap fill {total:.3f} s; goal <= 0.5 s)")


def bench_incremental(bars: BarArrays) -> None:
    inputs = bars.bar_inputs()[:40_000]
    state = IncrementalFeatures("SPY")
    update = state.update
    started = time.perf_counter()
    for bar in inputs:
        update(bar)
    elapsed = time.perf_counter() - started
    print(f"incremental: {elapsed / len(inputs) * 1e6:.1f} us per bar per symbol over {len(inputs):,} bars "
          f"(goal <= 50 us)")
    started = time.perf_counter()
    total = 0.0
    for i in range(200_000):
        total += i * 1.5
    print(f"  (machine reference: a 200k-iteration Python float loop took {time.perf_counter() - started:.3f} s)")


def agreement() -> None:
    files = {"SPY (2025-07)": ({"SPY": "SPY_1m_2025-07.csv.gz"}, "SPY"),
             "SPY+QQQ (2025-08..10)": ({"SPY": "SPY_1m_2025-08_2025-10.csv.gz",
                                        "QQQ": "QQQ_1m_2025-08_2025-10.csv.gz"}, None)}
    for label, (names, _) in files.items():
        bars = {symbol: BarArrays.from_csv(DATA / name) for symbol, name in names.items()}
        frames, streamed = batch_symbols(bars), stream_symbols(bars)
        for symbol in bars:
            diffs = differences(frames[symbol], streamed[symbol])
            calls, puts = firing_rates(frames[symbol].values)
            print(f"\nagreement {label} {symbol}: {len(frames[symbol].minutes):,} rows; "
                  f"strong setup calls {calls:.2%} puts {puts:.2%}")
            print(f"  {'feature':20s} {'max abs diff':>13s} {'max rel diff':>13s}")
            for d in diffs:
                print(f"  {d.feature:20s} {d.max_abs:13.3e} {d.max_rel:13.3e}")


def main() -> None:
    print(f"spec {FEATURE_SPEC.spec_hash[:16]}: {FEATURE_SPEC.n_market} market + "
          f"{FEATURE_SPEC.n_features - FEATURE_SPEC.n_market} position features")
    bars = _symbol_year()
    bench_batch(bars)
    bench_incremental(bars)
    agreement()


if __name__ == "__main__":
    main()
