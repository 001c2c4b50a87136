from __future__ import annotations

import threading

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from scalper_shared.runtime.app import ThreadWorker, build_service_app


def _failing_check() -> None:
    raise ConnectionError("redis down")


def test_readyz_reports_each_dependency_and_fails_when_one_is_down() -> None:
    app = build_service_app("t", checks={"database": lambda: None, "redis": _failing_check},
                            registry=CollectorRegistry())
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "error: redis down"}


def test_metrics_exposes_the_registry() -> None:
    registry = CollectorRegistry()
    Counter("scalper_test_things", "things", registry=registry).inc(3)
    with TestClient(build_service_app("t", registry=registry)) as client:
        body = client.get("/metrics").text
    assert "scalper_test_things_total 3.0" in body


def test_workers_run_while_up_and_stop_at_shutdown() -> None:
    started, stopped = threading.Event(), threading.Event()

    def loop(stop: threading.Event) -> None:
        started.set()
        stop.wait()
        stopped.set()

    worker = ThreadWorker("loop", loop)
    app = build_service_app("t", workers=[worker], registry=CollectorRegistry())
    with TestClient(app) as client:
        assert started.wait(2)
        assert client.get("/healthz").json()["status"] == "ok"
    assert stopped.is_set() and not worker.is_alive()


def test_healthz_is_503_when_a_worker_died() -> None:
    worker = ThreadWorker("dies", lambda stop: None)
    app = build_service_app("t", workers=[worker], registry=CollectorRegistry())
    with TestClient(app) as client:
        worker.join(2)
        response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["dead_workers"] == ["dies"]


def test_an_unknown_query_parameter_is_rejected_with_its_name() -> None:
    app = build_service_app("t", registry=CollectorRegistry())

    @app.get("/items")
    def items(limit: int = 10) -> dict[str, int]:
        return {"limit": limit}

    with TestClient(app) as client:
        assert client.get("/items", params={"limit": 3}).json() == {"limit": 3}
        refused = client.get("/items", params={"limt": 3, "zz": 1})
        assert client.get("/healthz", params={"verbose": 1}).status_code == 422
    assert refused.status_code == 422
    assert [(e["loc"], e["type"]) for e in refused.json()["detail"]] == [
        (["query", "limt"], "extra_forbidden"), (["query", "zz"], "extra_forbidden")]


def test_metrics_is_documented_as_plain_text() -> None:
    schema = build_service_app("t", registry=CollectorRegistry()).openapi()
    assert list(schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
