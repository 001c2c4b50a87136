"""Settings of the ingestion service and the ``scalper ingest`` commands (environment and `.env`);
see `.env.example`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from scalper_ingestion.quality import QualityRules
from scalper_shared.settings import ServiceSettings

SYMBOLS_PATTERN = r"^[A-Z0-9:.]{1,16}(,[A-Z0-9:.]{1,16})*$"


def parse_symbols(value: str) -> tuple[str, ...]:
    """``"SPY,QQQ,I:SPX"`` as a tuple; raises ValueError for anything else."""
    cleaned = value.replace(" ", "")
    if not re.fullmatch(SYMBOLS_PATTERN, cleaned):
        raise ValueError(f"{value!r} is not a comma-separated list of tickers such as SPY,QQQ,I:SPX")
    return tuple(dict.fromkeys(cleaned.split(",")))


class IngestionSettings(ServiceSettings):
    http_port: int = Field(8001, ge=1, le=65535, validation_alias="INGESTION_HTTP_PORT")
    polygon_api_key: str = Field("", validation_alias="POLYGON_API_KEY",
                                 description="Polygon key; empty selects the synthetic market")
    live: bool = Field(False, validation_alias="INGESTION_LIVE",
                       description="Run the websocket live feed in the service (needs POLYGON_API_KEY)")
    symbols: str = Field("SPY,QQQ,I:SPX", validation_alias="INGESTION_SYMBOLS",
                         description="Tickers of the live feed and default backfills")
    polygon_cache_dir: Path = Field(Path("var/polygon-cache"), validation_alias="POLYGON_CACHE_DIR",
                                    description="Raw aggregates cache of REST backfills")
    polygon_requests_per_minute: float = Field(5.0, gt=0, validation_alias="POLYGON_REQUESTS_PER_MINUTE",
                                               description="REST rate limit (free tier: 5)")
    polygon_rest_url: str = Field("https://api.polygon.io", validation_alias="POLYGON_REST_URL")
    polygon_stocks_ws_url: str = Field("wss://socket.polygon.io/stocks", validation_alias="POLYGON_STOCKS_WS_URL")
    polygon_indices_ws_url: str = Field("wss://socket.polygon.io/indices",
                                        validation_alias="POLYGON_INDICES_WS_URL")
    synthetic_seed: int = Field(0, ge=0, validation_alias="INGESTION_SYNTHETIC_SEED",
                                description="Seed of the synthetic market (no API key)")
    synthetic_edge: Literal["none", "momentum"] = Field(
        "none", validation_alias="INGESTION_SYNTHETIC_EDGE",
        description="Planted edge of the synthetic market: none or momentum (docs/rewards.md)")

    earliest_bar_date: date = Field(date(2000, 1, 1), validation_alias="INGESTION_EARLIEST_BAR_DATE",
                                    description="Bars starting before this date (UTC) are quarantined")
    max_price: float = Field(1_000_000.0, gt=0, validation_alias="INGESTION_MAX_PRICE",
                             description="Bars with a price above this are quarantined (absurd_price)")
    max_volume: float = Field(1e10, gt=0, validation_alias="INGESTION_MAX_VOLUME",
                              description="Bars with a volume above this are quarantined (absurd_volume)")
    max_trade_count: int = Field(1_000_000_000, gt=0, validation_alias="INGESTION_MAX_TRADE_COUNT",
                                 description="Bars with a trade count above this are quarantined")
    spike_atr_multiple: float = Field(100.0, gt=0, validation_alias="INGESTION_SPIKE_ATR_MULTIPLE",
                                      description="A bar further than this many median ranges from its "
                                                  "neighbours' median close is quarantined (price_spike)")
    outbox_interval_s: float = Field(5.0, gt=0, validation_alias="INGESTION_OUTBOX_INTERVAL_S",
                                     description="How often the service publishes stored bars left unpublished")
    db_retry_s: float = Field(60.0, ge=0, validation_alias="INGESTION_DB_RETRY_S",
                              description="How long a write retries a lost database connection (backoff)")

    @property
    def quality_rules(self) -> QualityRules:
        return QualityRules(earliest=datetime.combine(self.earliest_bar_date, datetime.min.time(), UTC),
                            max_price=self.max_price, max_volume=self.max_volume,
                            max_trade_count=self.max_trade_count, spike_atr_multiple=self.spike_atr_multiple)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: str) -> str:
        return ",".join(parse_symbols(value))

    @property
    def symbol_list(self) -> tuple[str, ...]:
        return parse_symbols(self.symbols)
