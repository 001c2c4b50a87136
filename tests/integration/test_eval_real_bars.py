"""``scalper ingest file`` then ``scalper eval --local`` on real SPY bars, and the same evaluation
through ``POST /v1/evaluations`` run by an RQ worker on the ``evaluation`` queue."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from scalper_shared.schema.evaluation import EVALUATION_QUEUE
from scalper_shared.schema.training import Diagnostics
from scalper_trainer.evaluation import PLOTS, SECTIONS
from tests.integration.eval_support import ingest_spy_july, invoke, register_fresh_model
from tests.integration.training_support import headers, policy_client, private_redis_server

pytestmark = pytest.mark.integration

WINDOW = ["--from", "2025-07-07", "--to", "2025-07-09"]


def test_cli_local_evaluation_on_ingested_real_bars_writes_every_report_section(
        shared_data: Path, migrated_database_url: str, redis_url: str, stream_prefix: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": stream_prefix,
           "ARTIFACTS_DIR": str(tmp_path / "artifacts")}
    ingest_spy_july(shared_data, env)
    model_id = register_fresh_model(migrated_database_url, tmp_path / "artifacts")
    out = tmp_path / "report"

    output = invoke(["eval", "--model", model_id, *WINDOW, "--local", "--out", str(out)], env)

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(SECTIONS) <= set(metrics)
    assert metrics["window"]["symbol_days"] == 3 and metrics["window"]["symbols"] == ["SPY"]
    assert metrics["daily_pnl"]["days"] == ["2025-07-07", "2025-07-08", "2025-07-09"]
    assert set(metrics["baselines"]) == {"hold", "random", "momentum_rule"}
    assert metrics["baselines"]["hold"]["performance"]["total_pnl"] == 0.0
    assert set(metrics["momentum_accuracy"]) == {"5m", "15m"}
    assert {"tp1", "tp2", "tp3", "stop", "agent", "end_of_day"} <= set(metrics["exits_by_reason"]["fills"])
    assert metrics["stop_loss"]["stop_loss_limit"] == -0.15
    assert "SPY" in metrics["symbol_rotation"]["per_symbol"]
    stability = metrics["action_stability"]
    assert [c["label"] for c in stability["checkpoints"]] == ["step 0", "step 64"]
    assert stability["checkpoints"][-1]["kl_to_final"] == pytest.approx(0.0, abs=1e-12)
    assert stability["checkpoints"][1]["kl_to_previous"] >= 0.0 and stability["states"] > 0
    total = metrics["performance"]["total_pnl"]
    assert metrics["summary"].startswith(f"The agent {'LOST' if total < 0 else 'MADE'} ${abs(total):,.2f} over 3 days")
    assert "The agent" in output and "report:" in output
    html = (out / "report.html").read_text()
    for key, name in PLOTS.items():
        assert metrics["plots"][key] == name
        png = out / name
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        embedded = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
        assert f'src="{embedded}"' in html, f"plot {key} is not embedded"
    assert_self_contained(html)
    for section in SECTIONS:
        if section not in ("model", "plots", "daily_pnl"):
            assert f'id="{section}"' in html, section
    assert_trader_sections(metrics, html)


def assert_self_contained(html: str) -> None:
    """Every image is a data URI; nothing is loaded from a file beside it or from a host."""
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(src.startswith("data:") for src in sources), [s[:60] for s in sources if not s.startswith("data:")]
    assert "http://" not in html and "https://" not in html


def assert_trader_sections(metrics: dict, html: str) -> None:
    """The header's sizing and limits, the per-baseline intervals, the cost breakdown, the trade list
    and the best/worst day of a real evaluation, in metrics.json and in the HTML."""
    config = metrics["config"]
    assert config["contracts_per_entry"] == 10 and config["risk"]["stop_loss_pct"] == 0.15
    assert config["premium"]["commission_per_contract"] == 0.65 and "SPY" in config["premium"]["symbols"]
    assert "<b>10 contracts per entry</b>" in html and "max daily loss" in html and "calibration multiplier" in html
    vs = metrics["significance"]["vs"]
    assert set(vs) == {"hold", "random", "momentum_rule"}
    for name, interval in vs.items():
        assert interval["ci_low"] <= interval["mean_daily_difference"] <= interval["ci_high"], name
        assert f"[{money(interval['ci_low'])}, {money(interval['ci_high'])}]" in html, name
    costs = metrics["costs"]
    assert [row["day"] for row in costs["per_day"]] == metrics["daily_pnl"]["days"]
    for row, pnl in zip(costs["per_day"], metrics["daily_pnl"]["pnl"], strict=True):
        assert row["net"] == pytest.approx(pnl, abs=1e-6)
        assert row["net"] == pytest.approx(row["gross"] - row["spread_paid"] - row["commission"], abs=1e-6)
    total = costs["total"]
    assert total["net"] == pytest.approx(metrics["performance"]["total_pnl"], abs=1e-6)
    assert total["trades"] == metrics["performance"]["trades"] == len(metrics["trades"])
    assert f"<th>{money(total['spread_paid'])}</th>" in html and f"<th>{money(total['commission'])}</th>" in html
    for trade in metrics["trades"]:
        assert trade["contracts"] == 10 and trade["symbol"] == "SPY" and trade["side"] in ("call", "put")
        assert sum(e["contracts"] for e in trade["exits"]) == 10 and trade["exits"][-1]["reason"] == trade["exit_reason"]
        assert "09:30" <= trade["entry_time"] <= trade["exit_time"] <= "16:00"
        assert trade["fees"] == pytest.approx(13.0)
    if metrics["trades"]:
        first = metrics["trades"][0]
        assert f"<td>{first['entry_time']}</td>" in html and f"{money(first['pnl'])}</td>" in html
    days = metrics["price_days"]
    assert days["best"]["pnl"] == max(metrics["daily_pnl"]["pnl"]) and days["worst"]["pnl"] == min(metrics["daily_pnl"]["pnl"])
    diagnostics = metrics["checkpoint_diagnostics"]
    assert diagnostics["fields"] == list(Diagnostics.model_fields)
    assert [row["step"] for row in diagnostics["checkpoints"]] == [0, 64]
    for field in Diagnostics.model_fields:  # a row per field (per key of a mapping field), a column per step
        if field != "step":
            assert f"<th>{field.replace('_', ' ')}" in html, field
    assert "<th>step 0</th><th>step 64</th>" in html


def money(value: float) -> str:
    return f"-${abs(value):,.2f}" if value < 0 else f"${value:,.2f}"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    with private_redis_server(tmp_path) as url:
        yield url


def test_api_evaluation_runs_on_the_worker_queue_and_serves_its_report(
        shared_data: Path, migrated_database_url: str, private_redis: str, stream_prefix: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    artifacts = tmp_path / "artifacts"
    env = {"DATABASE_URL": migrated_database_url, "REDIS_URL": private_redis, "STREAM_PREFIX": stream_prefix,
           "ARTIFACTS_DIR": str(artifacts)}
    ingest_spy_july(shared_data, env)
    model_id = register_fresh_model(migrated_database_url, artifacts)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    api = policy_client(private_redis, migrated_database_url, artifacts, stream_prefix)
    body = {"model_id": model_id, "start": "2025-07-08", "end": "2025-07-09", "symbols": ["SPY"],
            "checkpoints": False}

    assert api.post("/v1/evaluations", json=body, headers=headers("reader-key")).status_code == 403
    assert api.post("/v1/evaluations", json={**body, "model_id": "model-nope"},
                    headers=headers("trainer-key")).status_code == 404
    bad = api.post("/v1/evaluations", json={**body, "start": "2025-07-10"}, headers=headers("trainer-key"))
    assert bad.status_code == 422
    accepted = api.post("/v1/evaluations", json=body, headers=headers("trainer-key"))
    assert accepted.status_code == 202, accepted.text
    evaluation_id = accepted.json()["id"]
    queued = api.get(f"/v1/evaluations/{evaluation_id}", headers=headers("reader-key")).json()
    assert queued["status"] == "queued" and queued["metrics"] is None
    assert api.get(f"/v1/evaluations/{evaluation_id}/report", headers=headers("reader-key")).status_code == 409

    connection = redis.Redis.from_url(private_redis)
    queue = Queue(stream_prefix + EVALUATION_QUEUE, connection=connection, serializer=JSONSerializer)
    assert queue.job_ids == [evaluation_id]
    SimpleWorker([queue], connection=connection, serializer=JSONSerializer).work(burst=True)

    view = api.get(f"/v1/evaluations/{evaluation_id}", headers=headers("reader-key")).json()
    assert view["status"] == "finished", view.get("error")
    assert view["progress"] == 1.0 and view["summary"].startswith("The agent")
    assert view["metrics"]["window"]["symbol_days"] == 2
    report = api.get(view["report_url"], headers=headers("reader-key"))
    assert report.status_code == 200 and "text/html" in report.headers["content-type"]
    assert view["summary"].split(" (")[0] in report.text
    plot = api.get(f"/v1/evaluations/{evaluation_id}/equity.png", headers=headers("reader-key"))
    assert plot.status_code == 200 and plot.content[:4] == b"\x89PNG"
    assert api.get(f"/v1/evaluations/{evaluation_id}/secrets.txt", headers=headers("reader-key")).status_code == 404
    assert api.get("/v1/evaluations/eval-missing", headers=headers("reader-key")).status_code == 404
