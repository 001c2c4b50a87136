"""Pure parts of the stack CLI: settings, URL handling, service endpoints, demo step running."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from scalper_cli import demo, infra, stack
from scalper_cli.settings import StackSettings
from scalper_shared.schema import Bar


def test_stack_settings_read_their_variables_and_make_the_var_dir_absolute(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCALPER_VAR_DIR", "myvar")
    monkeypatch.setenv("STACK_READY_TIMEOUT_S", "12.5")
    settings = StackSettings()
    assert settings.var_dir == tmp_path / "myvar"
    assert settings.ready_timeout_s == 12.5
    assert settings.pid_file("policy") == tmp_path / "myvar" / "run" / "policy.pid"
    assert settings.log_file("policy") == tmp_path / "myvar" / "log" / "policy.log"


def test_service_ports_come_from_each_services_settings(monkeypatch) -> None:
    monkeypatch.setenv("TRAINER_HTTP_PORT", "18999")
    by_name = {ep.spec.name: ep for ep in stack.endpoints()}
    assert set(by_name) == {"ingestion", "features", "policy", "execution", "trainer"}
    assert by_name["trainer"].port == 18999
    assert by_name["trainer"].port_variable == "TRAINER_HTTP_PORT"
    assert by_name["policy"].marker == "-m scalper_policy"


def test_passwords_are_masked() -> None:
    assert infra.mask_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert infra.mask_url("postgresql+psycopg://u:pw@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert infra.mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_conninfo_drops_the_driver_and_can_switch_database() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/scalper"
    assert infra.conninfo(url) == "postgresql://postgres@127.0.0.1:5432/scalper"
    assert infra.conninfo(url, "postgres") == "postgresql://postgres@127.0.0.1:5432/postgres"


def test_closed_ports_do_not_answer() -> None:
    from scalper_cli.processes import free_port

    port = free_port()
    assert not infra.redis_answers(f"redis://127.0.0.1:{port}/0", 1.0)
    assert not infra.postgres_answers(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x", 1.0)


def test_the_migration_entry_point_is_found_when_present() -> None:
    migrate = infra.find_migrate()
    assert migrate is not None and callable(migrate)


def test_demo_bars_are_valid_consecutive_minutes() -> None:
    bars = demo.demo_bars(4)
    assert all(isinstance(b, Bar) for b in bars)
    assert [(b.start - bars[0].start).total_seconds() for b in bars] == [0, 60, 120, 180]


def test_metric_samples_exclude_comments() -> None:
    text = "# HELP a x\n# TYPE a counter\na_total 1.0\nb{l=\"v\"} 2.0\n"
    assert demo.count_metric_samples(text) == 2


def test_demo_steps_stop_at_the_first_failure(tmp_path: Path) -> None:
    ran: list[str] = []

    def ok(ctx: demo.DemoContext) -> str:
        ran.append("ok")
        return "fine"

    def broken(ctx: demo.DemoContext) -> str:
        raise demo.DemoError("feature vectors missing")

    ctx = demo.DemoContext(StackSettings(SCALPER_VAR_DIR=tmp_path), Console(file=open(Path("/dev/null"), "w")))  # noqa: SIM115
    results = demo.run_steps(ctx, [("one", ok), ("two", broken), ("three", ok)])
    assert [(r.name, r.ok) for r in results] == [("one", True), ("two", False)]
    assert results[1].detail == "DemoError: feature vectors missing"
    assert ran == ["ok"]


@pytest.mark.parametrize("state_file_exists", [False, True])
def test_status_of_a_stack_never_started_shows_every_service_down(tmp_path, state_file_exists) -> None:
    settings = StackSettings(SCALPER_VAR_DIR=tmp_path)
    if state_file_exists:
        stack.save_state(settings, stack.StackState(infrastructure=infra.Infrastructure(
            redis_url="redis://:pw@127.0.0.1:1/0", database_url="postgresql+psycopg://p@127.0.0.1:1/x")))
    result = stack.status(settings)
    assert not result.ok
    assert [s.alive for s in result.services] == [False] * 5
    assert [i.url for i in result.infrastructure] == (
        ["redis://:***@127.0.0.1:1/0", "postgresql+psycopg://p@127.0.0.1:1/x"] if state_file_exists else [])
