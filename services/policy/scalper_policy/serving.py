"""What the policy endpoints and the live decision loop share: the model holder, the live state, the
promoted-model sync and the background workers, built from settings and connections."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from scalper_policy.decisions import LiveDecisions, StoredSessionStarts, decision_workers
from scalper_policy.inference import ModelHolder, PromotedModelSync, feature_service_spec_hash
from scalper_policy.live import LiveState
from scalper_policy.settings import PolicySettings
from scalper_shared.bus import ConsumerConfig, StreamProducer
from scalper_shared.clock import Clock, SystemClock
from scalper_shared.runtime.app import BackgroundWorker, ThreadWorker
from scalper_shared.runtime.bootstrap import Connections
from scalper_shared.schema import streams


@dataclass
class PolicyRuntime:
    holder: ModelHolder
    live: LiveState
    clock: Clock
    sync: PromotedModelSync | None = None
    decisions: LiveDecisions | None = None
    workers: list[BackgroundWorker] = field(default_factory=list)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    rng_lock: threading.Lock = field(default_factory=threading.Lock)

    def sample_rng(self, seed: int | None) -> np.random.Generator:
        """A generator for one stochastic action: seeded by the request, else a fresh child stream."""
        if seed is not None:
            return np.random.default_rng(seed)
        with self.rng_lock:
            return self.rng.spawn(1)[0]


def build_policy_runtime(settings: PolicySettings, connections: Connections,
                         clock: Clock | None = None) -> PolicyRuntime:
    """The runtime with its workers: the promoted-model poller and (if enabled) the two consumers."""
    clock = clock or SystemClock()
    holder, live = ModelHolder(), LiveState()
    prefix = settings.stream_prefix
    sync = PromotedModelSync(holder, connections.engine,
                             lambda: feature_service_spec_hash(connections.redis, prefix), clock)
    runtime = PolicyRuntime(holder, live, clock, sync=sync)
    runtime.workers.append(ThreadWorker("promoted-model-sync", lambda stop: sync.run(stop, settings.model_poll_s)))
    if settings.decisions_enabled:
        producer = StreamProducer(connections.redis, streams.POLICY_DECISIONS, maxlen=settings.stream_maxlen,
                                  prefix=prefix)
        runtime.decisions = LiveDecisions(holder, live, producer, clock, prefix=prefix,
                                          max_age_s=settings.decision_max_age_s,
                                          claim_ttl_s=settings.decision_claim_ttl_s,
                                          session_start=StoredSessionStarts(connections.engine))
        runtime.workers.extend(decision_workers(runtime.decisions, connections.redis,
                                                config=ConsumerConfig.from_settings(settings), prefix=prefix))
    return runtime
