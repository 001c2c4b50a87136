"""The feature service's core: md.bars deliveries in, feature rows committed, then vectors published.

Per batch of deliveries: bars go through the :class:`MinuteAligner`; each released minute goes
through the :class:`FeatureEngine`; the rows are upserted into ``features`` (``published`` false) and
committed; the vectors are published on ``features.vectors``; the rows are flagged published; the
runner then acknowledges the entries. One ``FeatureVector`` per symbol-minute of the gap-filled grid
(gap-filled minutes included, so a 20-minute window is always 20 minutes); its envelope id is
deterministic (``fv:<symbol>:<minute ms>:<hash[:12]>``) so consumers can drop duplicates.

Delivery and restarts:

- A bar already processed (redelivery, or any bar of a minute at or before the symbol's last
  processed minute) changes nothing. A corrected bar for an already processed minute is ignored
  here (it is in the ``bars`` table, so ``scalper features build`` and the next restart use it);
  a corrected bar for a minute still waiting in the aligner replaces the older one.
- Bars are acknowledged once buffered in the aligner; the ``bars`` table (written by ingestion
  before it publishes) is the source of truth. ``recover`` rebuilds the state from it: the latest
  session's regular-hours bars up to the last minute in ``features`` are replayed through the
  engine (outputs discarded), later bars of that session go back into the aligner, and committed
  rows never confirmed as published are published again (a crash between commit and publish).
- A failure in the middle of a batch (database or Redis down) marks the state stale; the next call
  recovers first, and the runner redelivers the batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from scalper_features import metrics, repository
from scalper_features.aligner import MinuteAligner, ReleasedMinute
from scalper_shared.bus import Delivery, StreamProducer
from scalper_shared.clock import Clock
from scalper_shared.core.features import FEATURE_SPEC, BarArrays, FeatureEngine, FeatureRow, FeatureSpec
from scalper_shared.core.features.sessions import MINUTE_MS, session_of
from scalper_shared.schema import Envelope
from scalper_shared.schema.envelope import make_envelope
from scalper_shared.schema.messages import Bar, FeatureVector

logger = logging.getLogger(__name__)

SOURCE = "features"


@dataclass(slots=True)
class _Output:
    rows: list[tuple[str, FeatureRow]] = field(default_factory=list)
    first_seen: dict[int, float] = field(default_factory=dict)


class FeaturePipeline:
    """Per-symbol feature state for ``symbols``; thread-safe (``handle`` and ``flush_expired``)."""

    def __init__(self, symbols: Sequence[str], db: Engine, producer: StreamProducer, clock: Clock, *,
                 wait_s: float, spec: FeatureSpec = FEATURE_SPEC,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.symbols = tuple(symbols)
        self.spec = spec
        self._db = db
        self._producer = producer
        self._clock = clock
        self._monotonic = monotonic
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._engine = FeatureEngine(self.symbols, spec)
        self._aligner = MinuteAligner(self.symbols, wait_s, monotonic)
        self._stale = True

    # -- entry points ---------------------------------------------------------------------------

    def handle(self, deliveries: Sequence[Delivery]) -> None:
        """The ConsumerRunner handler: buffer the bars, compute, commit, publish."""
        with self._lock:
            self._ensure_recovered()
            late = [released for released in map(self._add, deliveries) if released is not None]
            self._run(late + self._aligner.release())

    def flush_expired(self) -> None:
        """Process the minutes whose wait expired (called every second by a worker)."""
        with self._lock:
            self._ensure_recovered()
            self._run(self._aligner.release())

    def run_flusher(self, stop_event: threading.Event, interval_s: float = 0.5) -> None:
        """Worker loop: ``flush_expired`` until ``stop_event`` is set (errors are logged, not fatal)."""
        while not stop_event.wait(interval_s):
            try:
                self.flush_expired()
            except Exception:
                logger.exception("flushing expired minutes of %s failed; retrying", ",".join(self.symbols))

    def recover(self) -> None:
        """Rebuild the state from the database (see the module docstring)."""
        with self._lock:
            self._recover()

    # -- processing -----------------------------------------------------------------------------

    def _add(self, delivery: Delivery) -> ReleasedMinute | None:
        payload = delivery.envelope.payload
        if not isinstance(payload, Bar):
            logger.warning("entry %s is a %s, not a bar; skipped", delivery.id, delivery.envelope.type)
            return None
        bar = repository.bar_input(repository.datetime_to_ms(payload.start), payload.open, payload.high,
                                   payload.low, payload.close, payload.volume)
        released = self._aligner.add(payload.symbol, bar)
        if released is not None:
            metrics.LATE_BARS.labels(payload.symbol).inc()
        return released

    def _run(self, minutes: list[ReleasedMinute]) -> None:
        metrics.PENDING_MINUTES.set(self._aligner.pending_minutes)
        if not minutes:
            return
        try:
            output = self._compute(minutes)
            if output.rows:
                self._commit_and_publish(output)
        except Exception:
            self._stale = True
            raise

    def _compute(self, minutes: list[ReleasedMinute]) -> _Output:
        output = _Output()
        for released in minutes:
            if released.timed_out:
                metrics.MINUTES_TIMED_OUT.inc()
                logger.warning("minute %s processed after %.1fs without the bars of %s", released.minute,
                               self._wait_s, ",".join(sorted(set(self.symbols) - set(released.bars))))
            for symbol, rows in self._engine.on_minute(released.bars).items():
                for row in rows:
                    output.rows.append((symbol, row))
                    output.first_seen.setdefault(row.minute, released.first_seen)
        return output

    def _commit_and_publish(self, output: _Output) -> None:
        spec_hash = self.spec.spec_hash
        with self._db.begin() as connection:
            repository.upsert_feature_rows(connection, output.rows, spec_hash, published=False)
        self._producer.publish_many([self._envelope(symbol, row.minute, row.values) for symbol, row in output.rows])
        minutes = [row.minute for _, row in output.rows]
        with self._db.begin() as connection:
            repository.mark_published(connection, self.symbols, spec_hash, min(minutes), max(minutes))
        now = self._monotonic()
        for symbol, row in output.rows:
            metrics.VECTORS_PUBLISHED.labels(symbol).inc()
            metrics.LATENCY.observe(now - output.first_seen.get(row.minute, now))
        logger.debug("published %s vectors of minutes %s..%s", len(output.rows), min(minutes), max(minutes))

    def _envelope(self, symbol: str, minute_ms: int, values: tuple[float, ...]) -> Envelope:
        spec_hash = self.spec.spec_hash
        minute = repository.ms_to_datetime(minute_ms)
        message = FeatureVector(symbol=symbol, minute=minute, spec_hash=spec_hash, values=values)
        envelope_id = f"fv:{symbol}:{minute_ms}:{spec_hash[:12]}"
        return make_envelope(message, source=SOURCE, clock=self._clock, ids=lambda: envelope_id,
                             ts_event=repository.ms_to_datetime(minute_ms + MINUTE_MS))

    # -- recovery -------------------------------------------------------------------------------

    def _ensure_recovered(self) -> None:
        if self._stale:
            self._recover()

    def _recover(self) -> None:
        spec_hash = self.spec.spec_hash
        self._engine = FeatureEngine(self.symbols, self.spec)
        with self._db.connect() as connection:
            processed = repository.last_feature_minute_ms(connection, self.symbols, spec_hash)
            latest_bar = repository.latest_regular_bar_ms(connection, self.symbols)
            newest = max((t for t in (processed, latest_bar) if t is not None), default=None)
            bounds = session_of(newest) if newest is not None else None
            session_bars = ({} if bounds is None else
                            repository.load_bar_arrays(connection, self.symbols, bounds.open_ms, bounds.close_ms))
            unpublished = repository.unpublished_features(connection, self.symbols, spec_hash)
        replay_through = processed if bounds is not None and processed is not None and processed >= bounds.open_ms \
            else None
        seen = self._replay(session_bars, replay_through)
        self._aligner.restore(replay_through, seen)
        for symbol, arrays in session_bars.items():
            for bar in arrays.bar_inputs():
                if replay_through is None or bar.t > replay_through:
                    self._aligner.add(symbol, bar)
        self._republish(unpublished)
        self._stale = False
        logger.info("features of %s recovered: session %s, replayed through %s, %s minutes pending, "
                    "%s vectors republished", ",".join(self.symbols), bounds.day if bounds else None,
                    replay_through, self._aligner.pending_minutes, len(unpublished))

    def _replay(self, session_bars: dict[str, BarArrays], through: int | None) -> dict[str, int]:
        """Feed the bars at or before ``through`` minute by minute; returns each symbol's last minute."""
        if through is None:
            return {}
        by_minute: dict[int, dict] = {}
        for symbol, arrays in session_bars.items():
            for bar in arrays.bar_inputs():
                if bar.t <= through:
                    by_minute.setdefault(bar.t, {})[symbol] = bar
        seen: dict[str, int] = {}
        for minute in sorted(by_minute):
            self._engine.on_minute(by_minute[minute])
            for symbol in by_minute[minute]:
                seen[symbol] = minute
        return seen

    def _republish(self, rows: list[repository.StoredFeature]) -> None:
        if not rows:
            return
        spec_hash = self.spec.spec_hash
        self._producer.publish_many([self._envelope(r.symbol, r.minute_ms, r.values) for r in rows])
        with self._db.begin() as connection:
            repository.mark_published(connection, self.symbols, spec_hash, rows[0].minute_ms, rows[-1].minute_ms)
        for row in rows:
            metrics.VECTORS_PUBLISHED.labels(row.symbol).inc()
