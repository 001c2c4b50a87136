"""Prometheus metrics of the feature service (default registry, served on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

VECTORS_PUBLISHED = Counter("scalper_features_vectors_published_total",
                            "Feature vectors published on features.vectors (republications included)", ("symbol",))
LATENCY = Histogram("scalper_features_latency_seconds",
                    "From the arrival of a minute's first bar to the publication of its vectors",
                    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
PENDING_MINUTES = Gauge("scalper_features_pending_minutes", "Minutes waiting for the other symbols' bars")
MINUTES_TIMED_OUT = Counter("scalper_features_minutes_timed_out_total",
                            "Minutes processed after FEATURES_MINUTE_WAIT_S without every symbol's bar")
VECTORS_INCOMPLETE = Counter("scalper_features_vectors_incomplete_total",
                             "Vectors published with features marked unavailable (the policy refuses them)",
                             ("symbol", "reason"))
VECTORS_SUPERSEDED = Counter("scalper_features_vectors_superseded_total",
                             "Vectors published again with their full context after the missing bars arrived")
OWNER = Gauge("scalper_features_lease_owner", "1 while this replica holds its universe's lease (0: standby)")
LATE_BARS = Counter("scalper_features_late_bars_total",
                    "Bars at or before the last processed minute (redeliveries and late bars)", ("symbol",))
