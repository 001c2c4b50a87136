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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
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


Publish = Callable[[list[bytes]], object]


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
        clean, quarantined = validate(batch)
        with self.engine.begin() as connection:
            upserted = bulk_upsert(connection, bars_table, clean[list(BAR_COLUMNS)], returning=True)
            store_quarantined(connection, quarantined)
        changed = changed_bars(clean, upserted.changed_keys or ())
        published = self._publish(changed)
        reasons = reason_counts(quarantined)
        for reason, count in reasons.items():
            QUARANTINED.labels(reason).inc(count)
        WRITTEN.labels("inserted").inc(upserted.inserted)
        WRITTEN.labels("updated").inc(upserted.updated)
        WRITTEN.labels("unchanged").inc(upserted.unchanged)
        return WriteResult(len(batch), upserted.inserted, upserted.updated, upserted.unchanged,
                           len(quarantined), published, reasons)

    def _publish(self, changed: pd.DataFrame) -> int:
        if self.producer is None or changed.empty:
            return 0
        ordered = changed.sort_values(["start", "symbol"], kind="stable").reset_index(drop=True)
        encoded = encode_bar_envelopes(ordered, source=self.publish_source, ts_init=self.clock.now())
        self.producer.publish_encoded(encoded)
        return len(encoded)


def changed_bars(clean: pd.DataFrame, changed_keys: tuple[tuple[object, ...], ...] | list) -> pd.DataFrame:
    """The rows of ``clean`` whose ``(symbol, start)`` is among ``changed_keys``."""
    if len(changed_keys) == len(clean):
        return clean  # every row was new or changed (keys are unique within a validated batch)
    if not changed_keys:
        return clean.iloc[0:0]
    keys = pd.DataFrame(list(changed_keys), columns=["symbol", "start"])
    wanted = set(zip(keys["symbol"].tolist(), pd.DatetimeIndex(pd.to_datetime(keys["start"], utc=True))
                     .as_unit("ns").asi8.tolist(), strict=True))
    have = zip(clean["symbol"].tolist(), pd.DatetimeIndex(clean["start"]).as_unit("ns").asi8.tolist(), strict=True)
    mask = np.fromiter(((symbol, ns) in wanted for symbol, ns in have), dtype=bool, count=len(clean))
    return clean[mask].reset_index(drop=True)


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


__all__ = ["BarWriter", "WriteResult", "changed_bars", "envelope_ids", "store_quarantined"]
