"""The broker interface the paper broker implements and a live adapter (Alpaca) will implement.

Orders are identified by the caller's ``client_order_id`` (deterministic, persisted before sending);
a broker refuses a second order with the same id, and ``get_order`` finds an order by that id, so a
caller whose submit timed out asks before it resubmits and never sends a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from scalper_shared.schema.messages import OrderSide, SubmitOrder


class BrokerStatus(StrEnum):
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


OPEN_STATUSES = frozenset({BrokerStatus.ACCEPTED, BrokerStatus.PARTIALLY_FILLED})


class BrokerError(Exception):
    """The broker could not be reached or failed; the outcome of the request is unknown."""


class BrokerTimeout(BrokerError):
    """No answer in time: the order may or may not have reached the broker."""


class BrokerRejected(Exception):
    """The broker answered and refused the order."""


@dataclass(frozen=True, slots=True)
class BrokerFill:
    fill_id: str
    client_order_id: str
    contracts: int
    price: float
    commission: float
    filled_at: datetime


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    client_order_id: str
    broker_order_id: str
    option_symbol: str
    side: OrderSide
    contracts: int
    status: BrokerStatus
    fills: tuple[BrokerFill, ...] = field(default_factory=tuple)
    reason: str = ""

    @property
    def filled_contracts(self) -> int:
        return sum(f.contracts for f in self.fills)


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    option_symbol: str
    contracts: int
    avg_price: float


class Broker(Protocol):
    def submit(self, order: SubmitOrder) -> BrokerOrder:
        """Send ``order``; returns it as the broker holds it (maybe already filled).

        Raises ``BrokerRejected`` when refused, ``BrokerTimeout``/``BrokerError`` when the outcome is
        unknown. Submitting an id the broker already holds returns that order, never a second one.
        """
        ...

    def cancel(self, client_order_id: str) -> BrokerOrder | None:
        """Cancel what is left of an open order; the order as it ends up, or None if unknown."""
        ...

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """The order with this client id and its fills, or None if the broker never received it."""
        ...

    def open_orders(self) -> list[BrokerOrder]: ...

    def positions(self) -> list[BrokerPosition]: ...

    def fills(self, since: datetime | None = None) -> list[BrokerFill]: ...
