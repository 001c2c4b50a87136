"""Prometheus metrics of the bus, labelled by stream key and consumer group (default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_GROUP = ("stream", "group")

PUBLISHED = Counter("scalper_bus_published_total", "Entries appended to a stream", ("stream",))
PROCESSED = Counter("scalper_bus_messages_processed_total", "Entries handled and acknowledged", _GROUP)
HANDLER_FAILURES = Counter("scalper_bus_handler_failures_total",
                           "Handler calls that raised (a failed batch counts once, then each retry)", _GROUP)
DEAD_LETTERED = Counter("scalper_bus_dead_lettered_total", "Entries moved to the dead-letter stream",
                        (*_GROUP, "reason"))
RECLAIMED = Counter("scalper_bus_reclaimed_total", "Idle pending entries claimed with XAUTOCLAIM", _GROUP)
TRIMMED_UNPROCESSED = Counter("scalper_bus_trimmed_unprocessed_total",
                              "Pending entries found deleted by trimming before they were acknowledged",
                              _GROUP)
RECONNECTS = Counter("scalper_bus_reconnects_total", "Redis connection errors of the consumer loop, each followed by a backoff and a retry",
                     _GROUP)
BATCH_SECONDS = Histogram("scalper_bus_batch_seconds", "Time to handle and acknowledge one batch", _GROUP,
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
GROUP_LAG = Gauge("scalper_bus_group_lag", "Entries not yet delivered to the group", _GROUP)
GROUP_PENDING = Gauge("scalper_bus_group_pending", "Entries delivered to the group but not acknowledged",
                      _GROUP)
TRIM_RISK_RATIO = Gauge("scalper_bus_trim_risk_ratio",
                        "Unprocessed entries of the group (lag + pending) divided by the producer's MAXLEN",
                        _GROUP)
TRIM_RISK_WARNINGS = Counter("scalper_bus_trim_risk_warnings_total",
                             "Producer checks that found a group's unprocessed work near MAXLEN", _GROUP)
