"""The one write path of every bar source: validate -> upsert -> commit -> publish.

:class:`BarWriter.write` takes one unvalidated batch, quarantines invalid bars (``bars_quarantine``
plus the ``scalper_ingestion_bars_quarantined_total{reason}`` counter), upserts the clean ones into
``bars`` in the same transaction, and only after the commit publishes the bars that were inserted or
changed to ``md.bars`` (an identical re-import publishes nothing). Invalid data never raises.

If the process dies between the commit and the publication, those bars are stored but were never
published; running the import again will not republish them (they are unchanged). A replay
(:mod:`scalper_ingestion.replay`) republishes stored days.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd
from prometheus_client import Counter
from sqlalchemy import Connection, Engine

from scalper_ingestion.envelopes import encode_bar_envelopes, envelope_ids
from scalper_ingestion.quality import reason_counts, validate
from scalper_ingestion.sources.base import BAR_COLUMNS
from scalper_shared.bus import StreamProducer
from scalper_shared.clock import Clock, SystemClock
from scalper_shared.db import bulk_upsert
from scalper_shared.db.models import bars as bars_table
from scalper_shared.db.models import bars_quarantine

logger = logging.getLogger(__name__)

PUBLISH_SOURCE = "ingestion"
INT32_MAX = 2**31 - 1

QUARANTINED = Counter("scalper_ingestion_bars_quarantined_total", "Bars that failed validation, by rule",
                      ("reason",))
WRITTEN = Counter("scalper_ingestion_bars_written_total", "Valid bars upserted, by outcome", ("outcome",))


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
                           self.quarantined + other.quarantined, self.published + other.published, reasons)


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
                 publish_source: str = PUBLISH_SOURCE) -> None:
        self.engine = engine
        self.producer = producer
        self.clock = clock or SystemClock()
        self.publish_source = publish_source

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
        clean, quarantined = validate(batch)
        reasons = reason_counts(quarantined)
        for reason, count in reasons.items():
            QUARANTINED.labels(reason).inc(count)
        step = max(1, slice_rows or len(clean))
        for offset in range(0, max(len(clean), 1), step):
            part = clean.iloc[offset:offset + step]
            first = offset == 0
            with self.engine.begin() as connection:
                upserted = bulk_upsert(connection, bars_table, part, columns=BAR_COLUMNS, returning=True)
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
        """Publish a committed slice's inserted and changed bars to ``md.bars``, in time order."""
        return self._publish(stored.changed)

    def _publish(self, changed: pd.DataFrame) -> int:
        if self.producer is None or changed.empty:
            return 0
        ordered = changed.sort_values(["start", "symbol"], kind="stable").reset_index(drop=True)
        encoded = encode_bar_envelopes(ordered, source=self.publish_source, ts_init=self.clock.now())
        self.producer.publish_encoded(encoded)
        return len(encoded)


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
    counts = rows["trade_count"].astype("Int64")
    rows["trade_count"] = counts.where(counts.abs() <= INT32_MAX)  # an absurd count must not fail the write
    return bulk_upsert(connection, bars_quarantine, rows).inserted


__all__ = ["BarWriter", "StoredSlice", "WriteResult", "envelope_ids", "store_quarantined"]
