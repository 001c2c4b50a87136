"""Live trading through Alpaca: the three switches, the daily confirmation phrase and the size ladder.

Live trading is off unless all of these hold at start (otherwise the service refuses to start):

1. ``ALPACA_API_KEY`` and ``ALPACA_SECRET_KEY`` are set;
2. ``LIVE_TRADING=true``;
3. ``LIVE_TRADING_CONFIRM`` equals :func:`confirmation_phrase` for the account the keys open and
   today's New York date, e.g. ``trade live on PA3TEST0001 on 2025-07-01``. The phrase names the
   account (read from Alpaca, so keys of another account do not match) and expires at midnight, so a
   setting left in a ``.env`` stops working the next day.

The size ladder caps contracts per entry: the first rung is 1 contract; after every
``LIVE_LADDER_DAYS_PER_STEP`` profitable days (realised P&L > 0, counted in ``daily_pnl`` from
``LIVE_LADDER_SINCE``, today excluded) it steps up one rung; a losing day steps down one rung and
restarts the count. Unset ``LIVE_LADDER_SINCE`` keeps it on the first rung.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from alpaca.trading.models import TradeAccount
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Engine, select

from scalper_execution.brokers.alpaca import AlpacaBroker, AlpacaConfig
from scalper_shared.db.models import daily_pnl

logger = logging.getLogger(__name__)


class LiveTradingRefused(Exception):
    """Live trading was asked for (``EXECUTION_BROKER=alpaca``) but a switch is not on."""


class LiveSettingsMixin(BaseModel):
    """Fields of the execution settings that configure the Alpaca adapter and its safety switches."""

    alpaca_api_key: str = Field("", description="Alpaca API key id; empty keeps live trading off")
    alpaca_secret_key: str = Field("", description="Alpaca secret key; empty keeps live trading off")
    alpaca_paper: bool = Field(True, description="Use Alpaca's paper endpoint (paper-api.alpaca.markets)")
    alpaca_base_url: str = Field("", description="Override of the trading API URL (tests, proxies)")
    alpaca_timeout_ms: int = Field(5000, gt=0, description="Timeout of every Alpaca HTTP request")
    alpaca_fee_per_contract: float = Field(0.0, ge=0, description="Fees charged per contract filled")
    live_trading: bool = Field(False, description="Second switch of live trading")
    live_trading_confirm: str = Field("", description="Today's confirmation phrase (third switch)")
    live_size_ladder: list[int] = Field(default_factory=lambda: [1, 2, 3, 5],
                                        description="Contracts per entry, rung by rung")
    live_ladder_days_per_step: int = Field(5, gt=0, description="Profitable days to climb one rung")
    live_ladder_since: date | None = Field(None, description="First day counted by the ladder")

    @field_validator("live_ladder_since", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("live_size_ladder")
    @classmethod
    def _valid_ladder(cls, value: list[int]) -> list[int]:
        if not value or value[0] != 1:
            raise ValueError("the size ladder starts at 1 contract, e.g. [1,2,3,5]")
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("the size ladder must increase rung by rung, e.g. [1,2,3,5]")
        return value


def confirmation_phrase(account_number: str, day: date) -> str:
    """What ``LIVE_TRADING_CONFIRM`` must say to trade ``account_number`` on ``day``."""
    return f"trade live on {account_number} on {day.isoformat()}"


def switch_refusal(settings: LiveSettingsMixin) -> str | None:
    """Why live trading is off before asking Alpaca anything (keys, ``LIVE_TRADING``), or None."""
    if not settings.alpaca_api_key or not settings.alpaca_secret_key:
        return "ALPACA_API_KEY and ALPACA_SECRET_KEY must both be set"
    if not settings.live_trading:
        return "LIVE_TRADING is not true"
    if not settings.live_trading_confirm:
        return "LIVE_TRADING_CONFIRM is empty"
    return None


def confirmation_refusal(settings: LiveSettingsMixin, account_number: str, today: date) -> str | None:
    """Why ``LIVE_TRADING_CONFIRM`` does not confirm this account today, or None when it does."""
    expected = confirmation_phrase(account_number, today)
    if settings.live_trading_confirm.strip() != expected:
        return f"LIVE_TRADING_CONFIRM must be exactly '{expected}' (account and today's New York date)"
    return None


@dataclass(frozen=True, slots=True)
class LadderPosition:
    rung: int
    contracts: int
    profitable_days_on_rung: int


def ladder_position(rungs: list[int], days_per_step: int, results: Iterable[tuple[date, float]]) -> LadderPosition:
    """Walk the days in order: ``days_per_step`` profitable days climb a rung, a losing day steps down
    one and restarts the count; flat days (no realised P&L) change nothing."""
    rung, wins = 0, 0
    for _, pnl in sorted(results):
        if pnl > 0:
            wins += 1
            if wins == days_per_step:
                rung, wins = min(rung + 1, len(rungs) - 1), 0
        elif pnl < 0:
            rung, wins = max(rung - 1, 0), 0
    return LadderPosition(rung, rungs[rung], wins)


def daily_results(database: Engine, since: date | None, today: date) -> list[tuple[date, float]]:
    """(day, realised P&L) of the finished days from ``since``; nothing when ``since`` is unset."""
    if since is None:
        return []
    query = select(daily_pnl.c.day, daily_pnl.c.realised_pnl).where(
        daily_pnl.c.day >= since, daily_pnl.c.day < today).order_by(daily_pnl.c.day)
    with database.connect() as c:
        return [(row.day, float(row.realised_pnl)) for row in c.execute(query)]


def alpaca_config(settings: LiveSettingsMixin, contracts_per_entry: int) -> AlpacaConfig:
    return AlpacaConfig(api_key=settings.alpaca_api_key, secret_key=settings.alpaca_secret_key,
                        paper=settings.alpaca_paper, base_url=settings.alpaca_base_url or None,
                        timeout_s=settings.alpaca_timeout_ms / 1000, fee_per_contract=settings.alpaca_fee_per_contract,
                        max_contracts_per_entry=contracts_per_entry)


def start_live_broker(settings: LiveSettingsMixin, database: Engine, today: date) -> AlpacaBroker:
    """The Alpaca broker when every switch is on and the account can trade options; else
    ``LiveTradingRefused`` with the reason. Its contracts per entry are the ladder's current rung."""
    refusal = switch_refusal(settings)
    if refusal is not None:
        raise LiveTradingRefused(f"live trading is off: {refusal}")
    ladder = ladder_position(settings.live_size_ladder, settings.live_ladder_days_per_step,
                             daily_results(database, settings.live_ladder_since, today))
    broker = AlpacaBroker(alpaca_config(settings, ladder.contracts))
    account = broker.account()
    refusal = confirmation_refusal(settings, account.account_number, today) or _account_refusal(account)
    if refusal is not None:
        raise LiveTradingRefused(f"live trading is off: {refusal}")
    logger.warning("LIVE TRADING on Alpaca account %s (%s endpoint): ladder rung %s, %s contract(s) per entry, "
                   "%s profitable day(s) toward the next rung", account.account_number,
                   "paper" if settings.alpaca_paper else "live", ladder.rung + 1, ladder.contracts,
                   ladder.profitable_days_on_rung)
    return broker


def _account_refusal(account: TradeAccount) -> str | None:
    if account.status.value != "ACTIVE":
        return f"Alpaca account {account.account_number} is {account.status.value}, not ACTIVE"
    if account.trading_blocked or account.account_blocked or account.trade_suspended_by_user:
        return f"Alpaca account {account.account_number} is blocked from trading"
    if (account.options_trading_level or 0) < 1:
        return f"Alpaca account {account.account_number} is not approved for options trading"
    return None
