"""The synthetic bar source: ingestion's adapter over :mod:`scalper_shared.core.synthetic`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pandas as pd

from scalper_shared.core.edge import MarketEdge
from scalper_shared.core.synthetic import generate_bars


@dataclass(frozen=True)
class SyntheticSource:
    """:class:`~scalper_ingestion.sources.base.BarSource` over the embedded synthetic market."""

    symbols: tuple[str, ...]
    start: date
    end: date
    seed: int = 0
    edge: str = MarketEdge.NONE

    def batches(self) -> Iterator[pd.DataFrame]:
        return generate_bars(self.symbols, self.start, self.end, self.seed, self.edge)
