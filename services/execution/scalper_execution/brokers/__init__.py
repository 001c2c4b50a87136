"""Brokers the execution service sends orders to: the protocol, the paper broker (and later live)."""

from scalper_execution.brokers.base import (
    Broker,
    BrokerError,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    BrokerRejected,
    BrokerStatus,
    BrokerTimeout,
)

__all__ = ["Broker", "BrokerError", "BrokerFill", "BrokerOrder", "BrokerPosition", "BrokerRejected",
           "BrokerStatus", "BrokerTimeout"]
