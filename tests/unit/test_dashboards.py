"""Every Grafana dashboard under infra/grafana/ is provisioned, well formed, and queries only metrics
some service exports (a renamed or removed metric breaks this test, not a dashboard at 3 a.m.)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

from tests.unit.settings_catalog import REPO_ROOT

GRAFANA = REPO_ROOT / "infra" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
SERVICE_MODULES = ("scalper_ingestion.main", "scalper_features.main", "scalper_policy.main", "scalper_execution.main",
                   "scalper_trainer.main")
"""Importing a service's main registers every metric the service defines at import time."""
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",), "unknown": ("",)}
METRIC = re.compile(r"\bscalper_[a-z0-9_]+\b")
PROMQL_FUNCTIONS = re.compile(r"\b([a-z_]+)\s*\(")
KNOWN_FUNCTIONS = {"rate", "increase", "sum", "max", "min", "avg", "histogram_quantile", "by", "without", "count", "irate"}


def sample_names(families: Any) -> set[str]:
    names: set[str] = set()
    for family in families:  # what PromQL can select: the sample names (a counter only as NAME_total)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def exported_metrics() -> set[str]:
    for module in SERVICE_MODULES:
        importlib.import_module(module)
    from scalper_trainer.metrics import TrainerCollector

    collectors: list[Collector] = [TrainerCollector(None)]
    names = sample_names(REGISTRY.collect())
    for collector in collectors:
        names |= sample_names(collector.describe())
    return names


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every target of every panel (rows' nested panels included)."""
    out = []
    for panel in dashboard.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            out.extend((inner["title"], target["expr"]) for target in inner.get("targets", []) if "expr" in target)
    return out


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_metrics()


def test_pipeline_trading_and_training_dashboards_exist() -> None:
    assert {path.stem for path in DASHBOARDS} >= {"pipeline", "trading", "training"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_metric_a_dashboard_queries_is_exported_by_a_service(path: Path, exported: set[str]) -> None:
    dashboard = json.loads(path.read_text("utf-8"))
    found = queries(dashboard)
    assert len(found) >= 8, f"{path.name}: {len(found)} queries"
    for title, expr in found:
        metrics = set(METRIC.findall(expr))
        assert metrics, f"{path.name} panel {title!r} queries no scalper metric: {expr}"
        missing = sorted(metrics - exported)
        assert not missing, f"{path.name} panel {title!r} queries metrics no service exports: {missing}"
        unknown = set(PROMQL_FUNCTIONS.findall(expr)) - KNOWN_FUNCTIONS
        assert not unknown, f"{path.name} panel {title!r}: unexpected PromQL functions {unknown}"
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboards_use_the_provisioned_datasource_and_unique_ids(path: Path) -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    dashboard = json.loads(path.read_text("utf-8"))
    assert dashboard["uid"].startswith("scalper-") and dashboard["title"]
    panel_ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(panel_ids) == len(set(panel_ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]


def test_the_dashboard_provider_loads_the_directory_compose_mounts() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "scalper.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./infra/grafana/dashboards:{path}:ro" in mounts


def test_the_check_catches_a_metric_nobody_exports(exported: set[str]) -> None:
    assert "scalper_execution_orders_total" in exported and "scalper_http_request_duration_seconds_bucket" in exported
    assert "scalper_trainer_last_checkpoint_diagnostic" in exported
    assert not {"scalper_execution_orders", "scalper_no_such_metric_total"} & exported
