"""Bar sources: each yields batches of 1-minute bars as DataFrames in the shape of :mod:`.base`."""

from scalper_ingestion.sources.base import BAR_COLUMNS, BarSource, conform_bars, empty_bars, from_polygon_aggs

__all__ = ["BAR_COLUMNS", "BarSource", "conform_bars", "empty_bars", "from_polygon_aggs"]
