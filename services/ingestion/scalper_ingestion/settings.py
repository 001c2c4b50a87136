"""Settings of the ingestion service and the ``scalper ingest`` commands (environment and `.env`);
see `.env.example`."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

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

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: str) -> str:
        return ",".join(parse_symbols(value))

    @property
    def symbol_list(self) -> tuple[str, ...]:
        return parse_symbols(self.symbols)
