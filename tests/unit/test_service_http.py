"""What every service's HTTP face offers besides its API: docs that work offline, request latency."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from scalper_policy.app import build_policy_app
from scalper_policy.inference import ModelHolder
from scalper_policy.live import LiveState
from scalper_policy.serving import PolicyRuntime
from scalper_shared.runtime import build_service_app
from tests.unit.policy_support import fake_clock, lazy_connections, served, settings

SERVICES = ("ingestion", "features", "trainer", "execution")
URL_ATTRIBUTE = re.compile(r"""(?:src|href|url|spec-url)\s*[:=]\s*['"]([^'"]+)['"]""", re.IGNORECASE)
ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}""")


def referenced_urls(page: str) -> list[str]:
    return URL_ATTRIBUTE.findall(page)


def assert_docs_are_local(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 200, path
        page = response.text
        external = ABSOLUTE_URL.findall(page)
        assert not external, f"{path} references external hosts: {external}"
        urls = referenced_urls(page)
        assets = [u for u in urls if u.endswith((".js", ".css"))]
        assert assets, f"{path} loads no script or stylesheet: {urls}"
        for url in urls:
            assert not urlsplit(url).netloc, f"{path}: {url} names a host"
            asset = client.get(url)
            assert asset.status_code == 200, f"{path}: {url} answers {asset.status_code}"
            if url.endswith(".js"):
                assert len(asset.content) > 100_000, f"{path}: {url} is not the bundled UI ({len(asset.content)} bytes)"


@pytest.mark.parametrize("service", SERVICES)
def test_docs_and_redoc_of_every_service_reference_no_external_host(service: str) -> None:
    assert_docs_are_local(TestClient(build_service_app(service)))


def test_policy_docs_reference_no_external_host(tmp_path: Path) -> None:
    runtime = PolicyRuntime(ModelHolder(served(tmp_path, "model-a", seed=7)), LiveState(), fake_clock())
    assert_docs_are_local(TestClient(build_policy_app(settings(), lazy_connections(), runtime)))


def test_docs_off_serves_neither_page_nor_assets() -> None:
    client = TestClient(build_service_app("execution", docs=False))
    for path in ("/docs", "/redoc", "/openapi.json", "/static-offline-docs/swagger-ui-bundle.js"):
        assert client.get(path).status_code == 404, path


def latency_count(method: str, route: str, status: str) -> float:
    value = REGISTRY.get_sample_value("scalper_http_request_duration_seconds_count",
                                      {"method": method, "route": route, "status": status})
    return value or 0.0


def test_request_latency_is_counted_by_route_template_and_status() -> None:
    app: FastAPI = build_service_app("features")

    @app.get("/v1/things/{thing_id}")
    def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    client = TestClient(app)
    before_ok = latency_count("GET", "/v1/things/{thing_id}", "200")
    before_bad = latency_count("GET", "/v1/things/{thing_id}", "422")
    before_missing = latency_count("GET", "unmatched", "404")
    assert client.get("/v1/things/1").status_code == 200
    assert client.get("/v1/things/2").status_code == 200
    assert client.get("/v1/things/x").status_code == 422
    assert client.get("/no/such/path").status_code == 404
    assert latency_count("GET", "/v1/things/{thing_id}", "200") == before_ok + 2
    assert latency_count("GET", "/v1/things/{thing_id}", "422") == before_bad + 1
    assert latency_count("GET", "unmatched", "404") == before_missing + 1
    assert "scalper_http_request_duration_seconds_bucket" in client.get("/metrics").text
