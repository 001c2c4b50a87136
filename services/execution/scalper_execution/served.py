"""The model execution acts for: the promoted row of the ``models`` table, cached briefly.

A decision claiming another model re-reads the table (at most every ``recheck_s``), so a promotion is
honoured at once and a flood of forged decisions costs one query per ``recheck_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from scalper_execution.engine import ServedModel
from scalper_shared.db.training import promoted_model


class PromotedModelSource:
    """Callable as the engine's ``served``: the promoted model (None when none is promoted)."""

    def __init__(self, database: Engine, *, ttl_s: float = 1.0, recheck_s: float = 0.2,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._database = database
        self._ttl_s = ttl_s
        self._recheck_s = recheck_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._served: ServedModel | None = None
        self._read_at = -float("inf")

    def __call__(self, claimed_model_id: str) -> ServedModel | None:
        with self._lock:
            age = self._monotonic() - self._read_at
            mismatch = self._served is None or self._served.model_id != claimed_model_id
            if age > self._ttl_s or (mismatch and age > self._recheck_s):
                row = promoted_model(self._database)
                self._served = None if row is None else ServedModel(row.model_id, row.spec_hash, row.risk, row.premium)
                self._read_at = self._monotonic()
            return self._served
