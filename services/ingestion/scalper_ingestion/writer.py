"""The one write path of every bar source: validate -> upsert -> commit -> publish.

:class:`BarWriter.write` takes one unvalidated batch, quarantines invalid bars (``bars_quarantine``
plus the ``scalper_ingestion_bars_quarantined_total{reason}`` counter), upserts the clean ones into
``bars`` in the same transaction, and only after the commit publishes the bars that were inserted or
changed to ``md.bars`` (an identical re-import publishes nothing). Invalid data never raises.

Nothing is lost between the database and the stream: the transaction that stores a new or changed bar
also writes its version to ``bars_outbox``; the publication deletes it afterwards (only when it still
names the version published). If Redis fails (out of memory, restart) or the process dies between
the commit and the publication, the bars stay in the outbox, and :meth:`BarWriter.drain` (run by
every import before it starts, and every few seconds by the ingestion service) publishes them:
at least once, in time order. A writer without a producer (the demo's loader, stores for replays)
marks nothing. A lost database connection (PostgreSQL restart) is retried with exponential backoff
for up to ``db_retry_s`` seconds (tenacity) before the error is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd
from prometheus_client import Counter
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DBAPIError
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_delay, wait_exponential

from scalper_ingestion.envelopes import encode_bar_envelopes, envelope_ids
from scalper_ingestion.quality import DEFAULT_RULES, QualityRules, reason_counts, validate
from scalper_ingestion.sources.base import BAR_COLUMNS, conform_bars
from scalper_shared.bus import StreamProducer
from scalper_shared.clock import Clock, SystemClock
from scalper_shared.db import bulk_upsert
from scalper_shared.db.models import bars as bars_table
from scalper_shared.db.models import bars_outbox, bars_quarantine

logger = logging.getLogger(__name__)

PUBLISH_SOURCE = "ingestion"
INT64_MAX = 2**63 - 1
DRAIN_ROWS = 8_192
DB_RETRY_S = 60.0

QUARANTINED = Counter("scalper_ingestion_bars_quarantined_total", "Bars that failed validation, by rule",
                      ("reason",))
WRITTEN = Counter("scalper_ingestion_bars_written_total", "Valid bars upserted, by outcome", ("outcome",))
DRAINED = Counter("scalper_ingestion_outbox_published_total", "Stored bars published from the outbox after a "
                  "failed or interrupted publication")
DB_RETRIES = Counter("scalper_ingestion_db_retries_total", "Database transactions retried after a lost connection")


def _connection_lost(exc: BaseException) -> bool:
    """A database error that a retry on a new connection can cure (server restart, dropped link)."""
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def db_retrying(max_delay_s: float) -> Retrying:
    """Retries of one transaction on a lost connection: 0.25 s doubling up to 8 s, for ``max_delay_s``."""
    def count(state: object) -> None:
        DB_RETRIES.inc()
        before_sleep_log(logger, logging.WARNING)(state)  # type: ignore[arg-type]

    return Retrying(retry=retry_if_exception(_connection_lost), wait=wait_exponential(multiplier=0.25, max=8),
                    stop=stop_after_delay(max_delay_s), before_sleep=count, reraise=True)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one batch (or, summed, one job) did."""

    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    published: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    drained: int = 0
    """Stored bars an earlier, failed publication had left in the outbox, published by this job."""

    @property
    def stored(self) -> int:
        """Valid bars now in the table from this input (new, corrected or already there)."""
        return self.inserted + self.updated + self.unchanged

    def __add__(self, other: WriteResult) -> WriteResult:
        reasons = dict(self.reasons)
        for reason, count in other.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        return WriteResult(self.received + other.received, self.inserted + other.inserted,
                           self.updated + other.updated, self.unchanged + other.unchanged,
                           self.quarantined + other.quarantined, self.published + other.published, reasons,
                           self.drained + other.drained)


@dataclass(frozen=True, slots=True)
class StoredSlice:
    """A committed slice of a batch: its counts (``published`` = bars to publish) and those bars."""

    result: WriteResult
    changed: pd.DataFrame


class BarWriter:
    """Writes bar batches to ``bars`` (and ``bars_quarantine``), then publishes what changed.

    ``producer`` None stores without publishing. ``clock`` stamps the envelopes' ``ts_init``.
    """

    def __init__(self, engine: Engine, producer: StreamProducer | None, *, clock: Clock | None = None,
                 publish_source: str = PUBLISH_SOURCE, rules: QualityRules = DEFAULT_RULES,
                 db_retry_s: float = DB_RETRY_S) -> None:
        self.engine = engine
        self.producer = producer
        self.clock = clock or SystemClock()
        self.publish_source = publish_source
        self.rules = rules
        self.db_retry_s = db_retry_s

    def write(self, batch: pd.DataFrame) -> WriteResult:
        """Validate, store and (after the commit) publish one batch of bars."""
        result = WriteResult()
        for stored in self.store(batch):
            self.publish(stored)
            result = result + stored.result
        return result

    def store(self, batch: pd.DataFrame, *, slice_rows: int | None = None) -> Iterator[StoredSlice]:
        """Validate ``batch`` as a whole, then upsert its clean bars and commit, one transaction per
        slice of at most ``slice_rows`` bars (all at once when None); yields each committed slice with
        the bars to publish. The quarantined bars go with the first slice."""
        clean, quarantined = validate(batch, self.rules.at(self.clock.now()))
        reasons = reason_counts(quarantined)
        for reason, count in reasons.items():
            QUARANTINED.labels(reason).inc(count)
        step = max(1, slice_rows or len(clean))
        for offset in range(0, max(len(clean), 1), step):
            part = clean.iloc[offset:offset + step]
            first = offset == 0
            for attempt in db_retrying(self.db_retry_s):
                with attempt, self.engine.begin() as connection:
                    upserted = bulk_upsert(connection, bars_table, part, columns=BAR_COLUMNS, returning=True)
                    if self.producer is not None and upserted.changed is not None:
                        mark_unpublished(connection, part[upserted.changed])
                    if first:
                        store_quarantined(connection, quarantined)
            WRITTEN.labels("inserted").inc(upserted.inserted)
            WRITTEN.labels("updated").inc(upserted.updated)
            WRITTEN.labels("unchanged").inc(upserted.unchanged)
            changed = part if upserted.changed is None else part[upserted.changed].reset_index(drop=True)
            received = len(part) + (len(batch) - len(clean) if first else 0)
            to_publish = len(changed) if self.producer is not None else 0
            yield StoredSlice(WriteResult(received, upserted.inserted, upserted.updated, upserted.unchanged,
                                          len(quarantined) if first else 0, to_publish,
                                          reasons if first else {}), changed)

    def publish(self, stored: StoredSlice) -> int:
        """Publish a committed slice's inserted and changed bars to ``md.bars``, in time order, then
        clear their outbox marks."""
        return self._publish(stored.changed)

    def _publish(self, changed: pd.DataFrame) -> int:
        if self.producer is None or changed.empty:
            return 0
        ordered = changed.sort_values(["start", "symbol"], kind="stable").reset_index(drop=True)
        encoded = encode_bar_envelopes(ordered, source=self.publish_source, ts_init=self.clock.now())
        self.producer.publish_encoded(encoded)
        for attempt in db_retrying(self.db_retry_s):
            with attempt, self.engine.begin() as connection:
                clear_published(connection, ordered)
        return len(encoded)

    def pending(self) -> int:
        """Stored bars not yet confirmed on ``md.bars``."""
        with self.engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM bars_outbox")).scalar_one())

    def drain(self, *, max_rows: int | None = None) -> int:
        """Publish the bars left in the outbox (oldest first) and clear them; returns how many. Raises
        the publication's error (what it could not publish stays marked)."""
        if self.producer is None:
            return 0
        published = 0
        while max_rows is None or published < max_rows:
            limit = DRAIN_ROWS if max_rows is None else min(DRAIN_ROWS, max_rows - published)
            query = (select(*(bars_table.c[c] for c in BAR_COLUMNS))
                     .join(bars_outbox, (bars_outbox.c.symbol == bars_table.c.symbol)
                           & (bars_outbox.c.start == bars_table.c.start))
                     .order_by(bars_table.c.start, bars_table.c.symbol).limit(limit))
            with self.engine.connect() as connection:
                rows = pd.DataFrame(connection.execute(query).all(), columns=list(BAR_COLUMNS))
            if rows.empty:
                break
            count = self._publish(conform_bars(rows))
            published += count
            DRAINED.inc(count)
            logger.info("published %s stored bars from the outbox", count)
        return published


def quarantine_keys(quarantined: pd.DataFrame) -> list[str]:
    """A digest per quarantined row of its received values and reason (re-imports add nothing)."""
    values = quarantined[[*BAR_COLUMNS, "reason"]].astype(str)
    return [f"{digest:016x}" for digest in pd.util.hash_pandas_object(values, index=False).tolist()]


def store_quarantined(connection: Connection, quarantined: pd.DataFrame) -> int:
    """Upsert quarantined rows into ``bars_quarantine`` (inside the caller's transaction)."""
    if quarantined.empty:
        return 0
    rows = quarantined[[*BAR_COLUMNS, "reason"]].assign(key=quarantine_keys(quarantined))
    rows = rows.drop_duplicates(subset="key").reset_index(drop=True)
    rows["start"] = pd.to_datetime(rows["start"], utc=True, errors="coerce")
    counts = rows["trade_count"].astype("Float64")
    rows["trade_count"] = counts.where(counts.abs() <= INT64_MAX).round().astype("Int64")  # never fails the write
    return bulk_upsert(connection, bars_quarantine, rows).inserted


def mark_unpublished(connection: Connection, changed: pd.DataFrame) -> None:
    """Mark stored bar versions as not yet on ``md.bars`` (inside the transaction that stored them)."""
    if changed.empty:
        return
    marks = pd.DataFrame({"symbol": changed["symbol"].to_numpy(), "start": changed["start"].to_numpy(),
                          "envelope_id": envelope_ids(changed)})
    bulk_upsert(connection, bars_outbox, marks, columns=("symbol", "start", "envelope_id"))


def clear_published(connection: Connection, published: pd.DataFrame) -> None:
    """Clear the marks of the bar versions just published (a mark naming a newer version stays)."""
    connection.execute(
        text("DELETE FROM bars_outbox AS o USING unnest(CAST(:ids AS text[])) AS p(envelope_id) "
             "WHERE o.envelope_id = p.envelope_id"), {"ids": envelope_ids(published)})


__all__ = ["BarWriter", "StoredSlice", "WriteResult", "envelope_ids", "store_quarantined"]
