"""What a training job spends loading its episodes, and how much of it is the features.

Stores 59 trading days of the synthetic SPY, QQQ and I:SPX market in a scratch database, then times
``load_episodes`` (what a training job does before its first step: bars from the database, then the
batch features), split into the database read and the feature computation (median of 3). This is the
measurement behind removing the npz feature store (issue #18 item 5): a store could at most save the
feature computation, about a fifth of the load, which is itself a few seconds per job.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import date

START, END = date(2025, 5, 1), date(2025, 7, 25)
SYMBOLS = ("SPY", "QQQ", "I:SPX")


def _median(run: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    import pandas as pd
    from sqlalchemy import select

    from scalper_ingestion.backfill import run_backfill
    from scalper_ingestion.sources.synthetic import SyntheticSource
    from scalper_ingestion.writer import BarWriter
    from scalper_shared.core.calendar import trading_days
    from scalper_shared.db import bars, make_engine, migrate
    from scalper_shared.db.engine import drop_database, recreate_database
    from scalper_trainer.env.episodes import episodes_from_frame, load_episodes

    base = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/scalper")
    url = base.rsplit("/", 1)[0] + "/scalper_bench_training_load"
    recreate_database(url)
    migrate(url)
    engine = make_engine(url)
    traded = list(SYMBOLS[:2])
    try:
        run_backfill(SyntheticSource(SYMBOLS, START, END, 0), BarWriter(engine, None))
        query = (select(bars.c.symbol, bars.c.start, bars.c.open, bars.c.high, bars.c.low, bars.c.close, bars.c.volume)
                 .where(bars.c.symbol.in_(traded)).order_by(bars.c.symbol, bars.c.start))

        def read() -> pd.DataFrame:
            with engine.connect() as c:
                frame = pd.DataFrame(c.execute(query).all(),
                                     columns=["symbol", "start", "open", "high", "low", "close", "volume"])
            frame["volume"] = frame["volume"].astype(float)
            return frame

        frame = read()
        total = _median(lambda: load_episodes(engine, traded, START, END))
        read_s = _median(read)
        compute_s = _median(lambda: episodes_from_frame(frame))
        print(f"{len(trading_days(START, END))} trading days, {len(frame):,} bars of {', '.join(traded)}")
        print(f"load_episodes:          {total:6.2f} s")
        print(f"  the database read:    {read_s:6.2f} s")
        print(f"  the batch features:   {compute_s:6.2f} s ({compute_s / total:.0%}: the most a feature store saves)")
    finally:
        engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
