"""The services of one paper run, started in this process on the run's namespace (composition only).

:func:`paper_services` is the ``start_services`` of :func:`scalper_trainer.evaluation.paper.run_paper_day`:
it builds the features pipeline, the policy's decision loop and execution (paper broker, deterministic)
with their own factories, on the run's database, stream prefix and replay clock, each setting left at
its default (or the environment's) except where the namespace decides, starts their workers and returns
once the policy serves the model.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from scalper_execution.main import build_service
from scalper_execution.settings import ExecutionSettings
from scalper_features.main import prepared_replica
from scalper_features.pipeline import FeaturePipeline
from scalper_features.settings import FeaturesSettings
from scalper_ingestion.replay import replay_days
from scalper_policy.serving import build_policy_runtime
from scalper_policy.settings import PolicySettings
from scalper_shared.runtime.app import BackgroundWorker
from scalper_shared.runtime.bootstrap import connect
from scalper_shared.settings import ServiceSettings, load_settings
from scalper_trainer.evaluation.paper import (
    PaperError,
    PaperNamespace,
    PaperRequest,
    PaperResult,
    run_paper_day,
)

STOP_TIMEOUT_S = 10.0
S = TypeVar("S", bound=ServiceSettings)


@dataclass
class RunningServices:
    """What the lockstep asks of the running services (:class:`~scalper_trainer.evaluation.paper.PaperServices`)."""

    pipeline: FeaturePipeline

    def pending_minutes(self) -> int:
        return self.pipeline.pending_minutes

    def flush_features(self) -> None:
        self.pipeline.flush_expired()


def _settings(cls: type[S], ns: PaperNamespace, **fields: object) -> S:
    common = {"redis_url": ns.redis_url, "database_url": ns.database_url, "stream_prefix": ns.stream_prefix,
              "stream_maxlen": ns.stream_maxlen}
    return load_settings(cls).model_copy(update={**common, **fields})


@contextmanager
def paper_services(ns: PaperNamespace, ready_timeout_s: float = 30.0) -> Iterator[RunningServices]:
    features = _settings(FeaturesSettings, ns, symbols=",".join(ns.symbols), minute_wait_s=ns.minute_wait_s)
    policy = _settings(PolicySettings, ns, decisions_enabled=True, model_poll_s=0.1)
    execution = _settings(ExecutionSettings, ns, broker="paper", paper_deterministic=True, paper_latency_ms=0,
                          paper_slippage_ticks=0, risk_config=ns.risk.model_dump(mode="json"),
                          premium_config=ns.premium.model_dump(mode="json"),
                          allow_model_risk_mismatch=ns.allow_config_mismatch,
                          decision_bar_wait_ms=int(ns.bar_wait_s * 1000))
    connections = [connect(features), connect(policy), connect(execution)]
    running: list[BackgroundWorker] = []
    try:
        workers, ownership = prepared_replica(features, connections[0], "paper", ns.clock, ns.clock.seconds)
        runtime = build_policy_runtime(policy, connections[1], ns.clock)
        _, execution_workers, _ = build_service(execution, ns.clock, ns.clock.seconds, connections[2])
        running = [*workers, *runtime.workers, *execution_workers]
        for worker in running:
            worker.start()
        deadline = time.monotonic() + ready_timeout_s
        while runtime.holder.current() is None:
            if time.monotonic() > deadline:
                refusal = runtime.holder.refusal
                raise PaperError("the policy did not serve the model" + (f": {refusal.reason}" if refusal else ""))
            time.sleep(0.05)
        yield RunningServices(ownership.pipeline)
    finally:
        for worker in running:
            worker.stop()
        for worker in running:
            worker.join(STOP_TIMEOUT_S)
        for c in connections:
            c.redis.close()
            c.engine.dispose()


def run_paper(request: PaperRequest) -> PaperResult:
    """:func:`run_paper_day` with the ingestion replay and these services (``scalper paper``, the demo)."""
    return run_paper_day(request, replay_days, paper_services)
