"""What scales how (README "Scaling"): the feature service with 1 and 2 replicas of one universe, its
live latency, and the policy's live decision consumer, on the real SPY and QQQ bars of ../shared/data.

Each part runs on a fresh temporary database on ``BENCH_POSTGRES_URL`` and a private stream prefix on
``BENCH_REDIS_URL`` (as ``bench_ingest``), both removed at the end; ``BENCH_SCALING_DAYS`` trading days
(default 5) from 2025-08-12.

- **Features, backlog**: every bar of the days stored and published on md.bars at once (as
  ``scalper ingest file`` does), then the replicas (the service's own workers: lease keeper, consumer,
  flusher, in this process) started; time until every vector is published. With 2 replicas one owns
  the universe's lease and the other stands by, so the rate should not change: replicas buy failover,
  not throughput.
- **Features, live**: one day replayed minute by minute (both symbols' bars of a minute together);
  time from a minute's publication to its last vector (p50/p99), with 1 replica.
- **Policy decisions**: the batch vectors of the days on features.vectors, consumed by the policy's
  live decision handler with a served numpy policy (random weights, SB3's default net size); vectors
  and decisions per second with 1 consumer.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import redis
from sqlalchemy import Engine

from bench.bench_ingest import DATA, REDIS_URL, fresh_database
from bench.bench_policy_api import _artifact
from scalper_features.build import session_feature_days
from scalper_features.main import replica_workers
from scalper_features.repository import ms_to_datetime
from scalper_features.settings import FeaturesSettings
from scalper_shared.bus import ConsumerConfig, ConsumerRunner, StreamProducer
from scalper_shared.clock import FakeClock, SequentialIds, SystemClock
from scalper_shared.core.calendar import classify, trading_days
from scalper_shared.core.features import FEATURE_SPEC, BarArrays
from scalper_shared.core.features.sessions import session_bounds
from scalper_shared.db import bars as bars_table
from scalper_shared.db import bulk_upsert, make_engine
from scalper_shared.schema import make_envelope, streams
from scalper_shared.schema.messages import Bar, FeatureVector, Session

SYMBOLS = ("SPY", "QQQ")
FILES = {"SPY": "SPY_1m_2025-08_2025-10.csv.gz", "QQQ": "QQQ_1m_2025-08_2025-10.csv.gz"}
FIRST_DAY = date(2025, 8, 12)
N_DAYS = int(os.environ.get("BENCH_SCALING_DAYS", "5"))


def _days() -> list[date]:
    return [d.day for d in trading_days(FIRST_DAY, FIRST_DAY + timedelta(days=3 * N_DAYS))][:N_DAYS]


def _bars(days: list[date]) -> dict[str, BarArrays]:
    bounds = [session_bounds(d) for d in days]
    out = {}
    for symbol, name in FILES.items():
        arrays = BarArrays.from_csv(DATA / name)
        keep = np.zeros(len(arrays), dtype=bool)
        for b in bounds:
            assert b is not None
            keep |= (arrays.t >= b.open_ms) & (arrays.t < b.close_ms)
        out[symbol] = arrays.take(np.flatnonzero(keep))
    return out


def _messages(bars: dict[str, BarArrays]) -> list[Bar]:
    out = []
    for symbol, a in bars.items():
        for t, o, h, l, c, v in zip(a.t.tolist(), a.o.tolist(), a.h.tolist(), a.l.tolist(), a.c.tolist(),  # noqa: E741
                                    a.v.tolist(), strict=True):
            start = ms_to_datetime(t)
            out.append(Bar(symbol=symbol, start=start, open=o, high=h, low=l, close=c, volume=v,
                           session=Session(classify(start) or "regular"), source="bench"))
    return sorted(out, key=lambda m: (m.start, m.symbol))


def _store(db: Engine, messages: list[Bar]) -> None:
    rows = [{"symbol": m.symbol, "start": m.start, "open": m.open, "high": m.high, "low": m.low, "close": m.close,
             "volume": m.volume, "session": str(m.session), "source": m.source} for m in messages]
    with db.begin() as connection:
        bulk_upsert(connection, bars_table, rows)


def _expected_rows(days: list[date], bars: dict[str, BarArrays]) -> list[int]:
    """Minute (ms) of every batch row, sorted."""
    minutes = []
    for day in days:
        bounds = session_bounds(day)
        assert bounds is not None
        minutes.extend(t for d in session_feature_days(bounds, bars, SYMBOLS) for t in d.minutes.tolist())
    return sorted(minutes)


@contextmanager
def _replicas(n: int, url: str, client: redis.Redis, db: Engine, prefix: str) -> Iterator[list]:
    os.environ.update({"DATABASE_URL": url, "REDIS_URL": REDIS_URL, "STREAM_PREFIX": prefix,
                       "FEATURES_SYMBOLS": ",".join(SYMBOLS), "FEATURES_MINUTE_WAIT_S": "60",
                       "FEATURES_LEASE_TTL_MS": "3000", "CONSUMER_BLOCK_MS": "20"})
    settings = FeaturesSettings()
    replicas = [replica_workers(settings, client, db, f"bench-{i}") for i in range(n)]
    for workers, _ in replicas:
        for worker in workers:
            worker.start()
    try:
        _wait(lambda: any(o.owned for _, o in replicas), 30)
        yield replicas
    finally:
        for workers, _ in replicas:
            for worker in workers:
                worker.stop()
        for workers, _ in replicas:
            for worker in workers:
                worker.join(10)


def _wait(condition, timeout: float, poll: float = 0.001) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"not reached in {timeout}s")
        time.sleep(poll)
    return time.perf_counter() - started


@contextmanager
def _prefix(client: redis.Redis) -> Iterator[str]:
    prefix = f"bench:{os.urandom(5).hex()}:"
    try:
        yield prefix
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)


def _publish(client: redis.Redis, prefix: str, messages: list) -> None:
    stream = streams.MD_BARS if isinstance(messages[0], Bar) else streams.FEATURES_VECTORS
    producer = StreamProducer(client, stream, maxlen=1_000_000, prefix=prefix)
    ids, clock = SequentialIds("bench"), SystemClock()
    producer.publish_many([make_envelope(m, source="bench", clock=clock, ids=ids) for m in messages])


def features_backlog(n_replicas: int, messages: list[Bar], expected: int, client: redis.Redis) -> float:
    with fresh_database() as url, _prefix(client) as prefix:
        db = make_engine(url)
        try:
            _store(db, messages)
            _publish(client, prefix, messages)
            key = prefix + streams.FEATURES_VECTORS
            started = time.perf_counter()
            with _replicas(n_replicas, url, client, db, prefix) as replicas:
                _wait(lambda: client.xlen(key) >= expected, 600, poll=0.01)
                seconds = time.perf_counter() - started
                owners = sum(o.owned for _, o in replicas)
            assert client.xlen(key) == expected, f"{client.xlen(key)} vectors, expected {expected}"
            assert owners == 1
            return seconds
        finally:
            db.dispose()


def features_live(messages: list[Bar], expected_minutes: list[int], client: redis.Redis) -> list[float]:
    day = [m for m in messages if m.start.date() == messages[0].start.date()]
    by_minute: dict[int, list[Bar]] = {}
    for m in day:
        by_minute.setdefault(int(m.start.timestamp() * 1000), []).append(m)
    latencies = []
    with fresh_database() as url, _prefix(client) as prefix:
        db = make_engine(url)
        try:
            key = prefix + streams.FEATURES_VECTORS
            with _replicas(1, url, client, db, prefix):
                for minute, bars in sorted(by_minute.items()):
                    if len(bars) < len(SYMBOLS):
                        continue  # a minute one symbol skipped is released by the next one: not a latency
                    target = int(np.searchsorted(expected_minutes, minute, side="right"))
                    _store(db, bars)
                    started = time.perf_counter()
                    _publish(client, prefix, bars)
                    _wait(lambda t=target: client.xlen(key) >= t, 30, poll=0.0002)  # type: ignore[misc]
                    latencies.append(time.perf_counter() - started)
        finally:
            db.dispose()
    return latencies


def policy_decisions(days: list[date], bars: dict[str, BarArrays], client: redis.Redis) -> tuple[float, int, int]:
    from scalper_policy.decisions import LiveDecisions
    from scalper_policy.inference import ModelHolder, load_served_model
    from scalper_policy.live import LiveState

    vectors = []
    for day in days:
        bounds = session_bounds(day)
        assert bounds is not None
        for d in session_feature_days(bounds, bars, SYMBOLS):
            vectors.extend(FeatureVector(symbol=d.symbol, minute=ms_to_datetime(t), spec_hash=d.spec_hash,
                                         values=tuple(v)) for t, v in zip(d.minutes.tolist(), d.values.tolist(),
                                                                          strict=True))
    vectors.sort(key=lambda v: (v.minute, v.symbol))
    with tempfile.TemporaryDirectory() as root, _prefix(client) as prefix:
        model = load_served_model("bench", _artifact(Path(root)), expected_spec_hash=FEATURE_SPEC.spec_hash,
                                  loaded_at=ms_to_datetime(0))
        producer = StreamProducer(client, streams.POLICY_DECISIONS, maxlen=1_000_000, prefix=prefix)
        clock = FakeClock(vectors[-1].minute + timedelta(minutes=1))
        decisions = LiveDecisions(ModelHolder(model), LiveState(), producer, clock, prefix=prefix,
                                  max_age_s=10 ** 9)
        runner = ConsumerRunner(client, streams.FEATURES_VECTORS, "policy", "bench", decisions.handle_features,
                                config=ConsumerConfig(batch_size=500, block_ms=0), prefix=prefix)
        _publish(client, prefix, vectors)
        stop = threading.Event()
        started = time.perf_counter()
        while runner.poll(stop):
            pass
        seconds = time.perf_counter() - started
        made = client.xlen(prefix + streams.POLICY_DECISIONS)
    return seconds, len(vectors), made


def main() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    days = _days()
    bars = _bars(days)
    messages = _messages(bars)
    minutes = _expected_rows(days, bars)
    print(f"{len(days)} trading days {days[0]}..{days[-1]}: {len(messages)} regular-hours bars of {', '.join(SYMBOLS)}, "
          f"{len(minutes)} feature vectors")
    for n in (1, 2, 1, 2):
        seconds = features_backlog(n, messages, len(minutes), client)
        print(f"features, backlog, {n} replica(s): {len(minutes)} vectors in {seconds:.2f}s = "
              f"{len(minutes) / seconds:,.0f} vectors/s ({len(messages) / seconds:,.0f} bars/s)", flush=True)
    latencies = np.array(features_live(messages, minutes, client)) * 1000
    print(f"features, live (one day minute by minute, 1 replica): bar publish -> last vector of the minute "
          f"p50 {np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} ms "
          f"over {len(latencies)} minutes", flush=True)
    seconds, n_vectors, made = policy_decisions(days, bars, client)
    print(f"policy decisions, 1 consumer: {n_vectors} vectors in {seconds:.2f}s = {n_vectors / seconds:,.0f} vectors/s, "
          f"{made} decisions ({made / seconds:,.0f}/s; none before each session's warm-up row)", flush=True)


if __name__ == "__main__":
    main()
