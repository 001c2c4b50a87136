"""The feature service's core: md.bars deliveries in, feature rows committed, then vectors published.

One owner per symbol universe (see ``scalper_features.main`` and docs/features.md): the replica
holding the universe's Redis lease runs this pipeline; its fencing token guards both the database
writes (``feature_owners``, checked in the writing transaction) and the publications (the lease is
checked in the same Lua script as the ``XADD``), so a stale owner can neither write nor publish.

Per batch of deliveries: bars go through the :class:`MinuteAligner` (which says which minutes may
be computed, and up to which minute each symbol's bars are final); each session with a released
minute is computed by the **batch code** (``session_feature_days`` of ``scalper_features.build``) over the session's stored bars, each symbol's up to its newest bar seen on the
stream. The rows of released minutes that were not published yet, or that changed and now have
their full context, are upserted into ``features`` (``published`` false) and committed, published
on ``features.vectors``, flagged published; the runner then acknowledges the entries. So every
published row with empty ``unavailable`` equals the batch build bit for bit, by construction.

Marks and superseding (``scalper_shared.core.features.availability``):

- A minute released after ``wait_s`` without the reference's or peer's bar (rule 3 of the aligner)
  is counted (``scalper_features_minutes_timed_out_total``) and logged, and its rows carry the
  affected context features in ``unavailable`` (``scalper_features_vectors_incomplete_total``).
- When the missing symbol's bars arrive (late, or a whole file imported after the other one), the
  session is recomputed and each such row is published again, once, with its full context and empty
  marks (``scalper_features_vectors_superseded_total``); the table then holds the batch build's row.
  A marked row is never republished while still marked. A corrected bar of a processed minute is
  applied the same way (the rows it changes are superseded).
- An equity stored without volume marks the volume features of its rows.

Envelope ids are deterministic in the content (``fv:<symbol>:<minute ms>:<hash[:12]>:<digest>``):
a redelivery or a republication after a crash has the id of the original, a superseding vector its own.

Delivery and restarts: bars are acknowledged once buffered in the aligner; the ``bars`` table
(written by ingestion before it publishes) is the source of truth. ``recover`` (at start, on taking
the lease, after a failure) rebuilds the state: the latest session's published rows are loaded as
the published cache, its bars up to the last stored minute count as seen, later bars of that session
go back into the aligner, and committed rows never confirmed as published are published again.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from scalper_features import metrics, repository
from scalper_features.aligner import MinuteAligner, ReleasedMinute
from scalper_features.build import day_rows, session_feature_days
from scalper_features.repository import StoredFeature
from scalper_shared.bus import Delivery, StreamProducer
from scalper_shared.bus.lease import Fence
from scalper_shared.clock import Clock
from scalper_shared.core.features import FEATURE_SPEC, FeatureSpec
from scalper_shared.core.features.availability import (
    MISSING_PEERS,
    VOLUME_FEATURES,
    in_spec_order,
    missing_context,
)
from scalper_shared.core.features.sessions import MINUTE_MS, SessionBounds, session_of
from scalper_shared.schema import Envelope
from scalper_shared.schema.envelope import make_envelope
from scalper_shared.schema.messages import Bar, FeatureVector

logger = logging.getLogger(__name__)

SOURCE = "features"
MAX_CACHED_SESSIONS = 128
"""Sessions whose published rows the owner remembers; a late bar of an older session republishes
that session's rows (same envelope ids: consumers drop the repeats)."""


@dataclass(slots=True)
class _Output:
    rows: list[StoredFeature] = field(default_factory=list)
    first_seen: dict[int, float] = field(default_factory=dict)
    superseded: int = 0


class FeaturePipeline:
    """Feature state of one symbol universe; thread-safe (``handle`` and ``flush_expired``).

    Without ``take_ownership`` the pipeline runs unfenced (a single replica, tests); with it, every
    write checks the fence of ``universe`` and every publication the lease.
    """

    def __init__(self, symbols: Sequence[str], db: Engine, producer: StreamProducer, clock: Clock, *,
                 wait_s: float, spec: FeatureSpec = FEATURE_SPEC,
                 monotonic: Callable[[], float] = time.monotonic, universe: str = "features") -> None:
        self.symbols = tuple(symbols)
        self.spec = spec
        self.universe = universe
        self._db = db
        self._producer = producer
        self._clock = clock
        self._monotonic = monotonic
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._aligner = MinuteAligner(self.symbols, wait_s, monotonic)
        self._published: OrderedDict[int, dict[tuple[str, int], str]] = OrderedDict()
        """session open ms -> (symbol, minute) -> content digest of the row last published (this
        owner's view; the ``MAX_CACHED_SESSIONS`` sessions touched last)."""
        self._fence: Fence | None = None
        self._stale = True

    # -- ownership --------------------------------------------------------------------------------

    def take_ownership(self, fence: Fence, owner: str) -> None:
        """This replica now holds the universe's lease: claim the fence, then rebuild the state."""
        with self._lock:
            with self._db.begin() as connection:
                repository.claim_fence(connection, self.universe, fence.token, owner)
            self._fence = fence
            self._recover()

    def drop_ownership(self) -> None:
        """The lease was lost: write and publish nothing more until ``take_ownership``."""
        with self._lock:
            self._fence = None
            self._stale = True

    @property
    def pending_minutes(self) -> int:
        """Minutes buffered in the aligner, waiting for a symbol's bar."""
        with self._lock:
            return self._aligner.pending_minutes

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

    def run_flusher(self, stop_event: threading.Event, interval_s: float = 0.5,
                    active: Callable[[], bool] = lambda: True) -> None:
        """Worker loop: ``flush_expired`` while ``active()`` until ``stop_event`` is set (errors are
        logged, not fatal)."""
        while not stop_event.wait(interval_s):
            if not active():
                continue
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
        self._report_timeouts([m for m in minutes if m.timed_out])
        try:
            output = self._compute(minutes)
            if output.rows:
                self._commit_and_publish(output)
        except Exception:
            self._stale = True
            raise

    def _report_timeouts(self, timed_out: list[ReleasedMinute]) -> None:
        if not timed_out:
            return
        metrics.MINUTES_TIMED_OUT.inc(len(timed_out))
        silent = sorted({s for m in timed_out for s in self.symbols if s not in m.bars})
        logger.warning("%s minute(s) %s..%s released after %.1fs without the bars of %s: their context "
                       "features are marked unavailable until those bars arrive", len(timed_out),
                       repository.ms_to_datetime(timed_out[0].minute), repository.ms_to_datetime(timed_out[-1].minute),
                       self._wait_s, ",".join(silent))

    def _compute(self, minutes: list[ReleasedMinute]) -> _Output:
        output = _Output()
        sessions: dict[int, SessionBounds] = {}
        first_seen: dict[int, float] = {}
        for released in minutes:
            bounds = session_of(released.minute)
            if bounds is not None:
                sessions.setdefault(bounds.open_ms, bounds)
                first_seen.setdefault(released.minute, released.first_seen)
        for open_ms in sorted(sessions):
            self._session_rows(sessions[open_ms], output)
        output.rows.sort(key=lambda r: (r.minute_ms, self.symbols.index(r.symbol)))
        output.first_seen = first_seen
        return output

    def _session_rows(self, bounds: SessionBounds, output: _Output) -> None:
        """The rows of ``bounds`` to publish now: released, and new or changed with full context."""
        through = {s: t for s in self.symbols if (t := self._aligner.seen_through(s)) is not None}
        limit = self._aligner.released_through
        if limit is None:
            return
        with self._db.connect() as connection:
            loaded = repository.load_session_bars(connection, self.symbols, bounds.open_ms, bounds.close_ms, through)
        days = session_feature_days(bounds, loaded.bars, self.symbols, self.spec,
                                    without_volume=loaded.without_volume)
        published = self._session_cache(bounds.open_ms)
        for day in days:
            for row in day_rows(day):
                if row.minute_ms > limit:
                    break
                missing = missing_context(row.symbol, row.minute_ms, self.symbols, self._aligner.seen_through)
                row = row._replace(unavailable=in_spec_order(row.unavailable + missing))
                key, digest = (row.symbol, row.minute_ms), content_digest(row)
                before = published.get(key)
                if before is not None and (missing or before == digest):
                    continue
                published[key] = digest
                output.rows.append(row)
                if before is not None:
                    output.superseded += 1

    def _session_cache(self, open_ms: int) -> dict[tuple[str, int], str]:
        cache = self._published.get(open_ms)
        if cache is None:
            cache = self._published[open_ms] = {}
            while len(self._published) > MAX_CACHED_SESSIONS:
                self._published.popitem(last=False)
        self._published.move_to_end(open_ms)
        return cache

    def _commit_and_publish(self, output: _Output) -> None:
        spec_hash = self.spec.spec_hash
        fence = self._fence
        with self._db.begin() as connection:
            if fence is not None:
                repository.check_fence(connection, self.universe, fence.token)
            repository.upsert_feature_rows(connection, output.rows, spec_hash, published=False)
        self._producer.publish_many([self._envelope(row) for row in output.rows], fence=fence)
        minutes = [row.minute_ms for row in output.rows]
        with self._db.begin() as connection:
            repository.mark_published(connection, self.symbols, spec_hash, min(minutes), max(minutes))
        now = self._monotonic()
        for row in output.rows:
            metrics.VECTORS_PUBLISHED.labels(row.symbol).inc()
            metrics.LATENCY.observe(now - output.first_seen.get(row.minute_ms, now))
            for reason, names in (("missing_peers", MISSING_PEERS), ("missing_volume", VOLUME_FEATURES)):
                if set(row.unavailable) & set(names):
                    metrics.VECTORS_INCOMPLETE.labels(row.symbol, reason).inc()
        if output.superseded:
            metrics.VECTORS_SUPERSEDED.inc(output.superseded)
            logger.info("%s vector(s) of minutes %s..%s published again with their full context",
                        output.superseded, min(minutes), max(minutes))
        logger.debug("published %s vectors of minutes %s..%s", len(output.rows), min(minutes), max(minutes))

    def _envelope(self, row: StoredFeature) -> Envelope:
        spec_hash = self.spec.spec_hash
        message = FeatureVector(symbol=row.symbol, minute=repository.ms_to_datetime(row.minute_ms),
                                spec_hash=spec_hash, values=row.values, unavailable=row.unavailable)
        envelope_id = f"fv:{row.symbol}:{row.minute_ms}:{spec_hash[:12]}:{content_digest(row)}"
        return make_envelope(message, source=SOURCE, clock=self._clock, ids=lambda: envelope_id,
                             ts_event=repository.ms_to_datetime(row.minute_ms + MINUTE_MS))

    # -- recovery -------------------------------------------------------------------------------

    def _ensure_recovered(self) -> None:
        if self._stale:
            self._recover()

    def _recover(self) -> None:
        spec_hash = self.spec.spec_hash
        with self._db.connect() as connection:
            processed = repository.last_feature_minute_ms(connection, self.symbols, spec_hash)
            latest_bar = repository.latest_regular_bar_ms(connection, self.symbols)
            newest = max((t for t in (processed, latest_bar) if t is not None), default=None)
            bounds = session_of(newest) if newest is not None else None
            session_bars = ({} if bounds is None else
                            repository.load_bar_arrays(connection, self.symbols, bounds.open_ms, bounds.close_ms))
            stored = ([] if bounds is None else
                      repository.session_features(connection, self.symbols, spec_hash, bounds.open_ms,
                                                  bounds.close_ms))
            unpublished = repository.unpublished_features(connection, self.symbols, spec_hash)
        replay_through = processed if bounds is not None and processed is not None and processed >= bounds.open_ms \
            else None
        seen = {symbol: int(arrays.t[arrays.t <= replay_through].max())
                for symbol, arrays in session_bars.items()
                if replay_through is not None and (arrays.t <= replay_through).any()}
        self._published = OrderedDict()
        if bounds is not None:
            self._session_cache(bounds.open_ms).update({(r.symbol, r.minute_ms): content_digest(r) for r in stored})
        self._aligner.restore(replay_through, seen)
        for symbol, arrays in session_bars.items():
            for bar in arrays.bar_inputs():
                if replay_through is None or bar.t > replay_through:
                    self._aligner.add(symbol, bar)
        self._republish(unpublished)
        self._stale = False
        logger.info("features of %s recovered: session %s, processed through %s, %s minutes pending, "
                    "%s vectors republished", ",".join(self.symbols), bounds.day if bounds else None,
                    replay_through, self._aligner.pending_minutes, len(unpublished))

    def _republish(self, rows: list[StoredFeature]) -> None:
        if not rows:
            return
        spec_hash = self.spec.spec_hash
        self._producer.publish_many([self._envelope(r) for r in rows], fence=self._fence)
        with self._db.begin() as connection:
            repository.mark_published(connection, self.symbols, spec_hash, rows[0].minute_ms, rows[-1].minute_ms)
        for row in rows:
            metrics.VECTORS_PUBLISHED.labels(row.symbol).inc()


def content_digest(row: StoredFeature) -> str:
    """12 hex digits of the row's values (exact bits) and marks: equal content, equal envelope id."""
    digest = hashlib.sha256(struct.pack(f"<{len(row.values)}d", *row.values))
    digest.update(",".join(row.unavailable).encode())
    return digest.hexdigest()[:12]
