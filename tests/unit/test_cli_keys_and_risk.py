from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import Depends, FastAPI
from typer.testing import CliRunner

from scalper_cli.main import app
from scalper_cli.processes import free_port
from scalper_shared.core.enums import TradingState
from scalper_shared.core.ratelimit import RateLimit
from scalper_shared.runtime.api_security import ApiKeyRecord, Authenticator, Scope, hash_key
from scalper_shared.schema.execution import RiskStateView

runner = CliRunner()


def test_keys_new_prints_a_key_whose_hash_is_the_entry() -> None:
    result = runner.invoke(app, ["keys", "new", "--name", "ops", "--scopes", "read,trade"])
    assert result.exit_code == 0, result.output
    key = result.output.split("key (shown once): ")[1].split()[0]
    entry = json.loads(result.output.split("API_KEYS entry:")[1].splitlines()[0])
    assert entry == {"name": "ops", "sha256": hash_key(key), "scopes": ["read", "trade"]}


def test_keys_new_rejects_an_unknown_scope() -> None:
    result = runner.invoke(app, ["keys", "new", "--name", "ops", "--scopes", "read,god"])
    assert result.exit_code != 0 and "god" in result.output


@pytest.fixture
def fake_execution_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """A tiny server with the execution API's risk routes, recording what the CLI posts."""
    calls: list[tuple[str, str]] = []
    auth = Authenticator([ApiKeyRecord(name="ops", sha256=hash_key("k"), scopes=frozenset({Scope.TRADE}))],
                         RateLimit.parse("100/1s"))
    api = FastAPI()

    @api.post("/v1/risk/{command}", dependencies=[Depends(auth.require(Scope.TRADE))])
    def command(command: str, body: dict) -> RiskStateView:
        calls.append((command, body["reason"]))
        return RiskStateView(trading_state=TradingState.HALTED, pnl_today=0.0, realised_pnl_today=0.0,
                             trades_today=0, open_positions=0, open_orders=0, limits={})

    @api.get("/v1/risk/state", dependencies=[Depends(auth.require(Scope.TRADE))])
    def state() -> RiskStateView:
        return RiskStateView(trading_state=TradingState.ACTIVE, pnl_today=-1288.999999999999,
                             realised_pnl_today=-1289.0, trades_today=7, open_positions=0, open_orders=0,
                             limits={"max_trades_per_day": 10})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    monkeypatch.setenv("SCALPER_EXECUTION_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SCALPER_API_KEY", "k")
    yield calls
    server.should_exit = True
    thread.join(5)


def test_risk_flatten_posts_the_kill_switch(fake_execution_api: list[tuple[str, str]]) -> None:
    result = runner.invoke(app, ["risk", "flatten", "--reason", "drill"])
    assert result.exit_code == 0, result.output
    assert fake_execution_api == [("flatten", "drill")] and "halted" in result.output


def test_risk_command_with_a_bad_key_exits_1(fake_execution_api: list[tuple[str, str]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALPER_API_KEY", "wrong")
    result = runner.invoke(app, ["risk", "halt"])
    assert result.exit_code == 1 and fake_execution_api == []


def test_keys_new_prints_the_whole_api_keys_value_with_the_env_files_entries(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)
    env_file = tmp_path / ".env"
    first = runner.invoke(app, ["keys", "new", "--name", "ops", "--env-file", str(env_file)])
    assert first.exit_code == 0, first.output
    line = first.output.strip().splitlines()[-1]
    assert line.startswith("API_KEYS='[") and line.endswith("]'")
    assert [e["name"] for e in json.loads(line[len("API_KEYS='"):-1])] == ["ops"]
    env_file.write_text("LOG_LEVEL=INFO\n" + line + "\n")
    second = runner.invoke(app, ["keys", "new", "--name", "trader", "--scopes", "trade", "--env-file", str(env_file)])
    value = json.loads(second.output.strip().splitlines()[-1][len("API_KEYS='"):-1])
    assert [e["name"] for e in value] == ["ops", "trader"] and value[1]["scopes"] == ["trade"]
    assert f"the 1 entry from {env_file}" in second.output


def test_keys_new_append_writes_a_value_the_services_load(tmp_path, monkeypatch) -> None:
    from scalper_policy.settings import PolicySettings

    monkeypatch.delenv("API_KEYS", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=INFO\nAPI_KEYS=[]\n")
    keys = {}
    for name, scopes in (("ops", "admin"), ("reader", "read")):
        result = runner.invoke(app, ["keys", "new", "--name", name, "--scopes", scopes, "--append",
                                     "--env-file", str(env_file)])
        assert result.exit_code == 0, result.output
        keys[name] = result.output.split("key (shown once): ")[1].split()[0]
    assert "now holds 2 key(s): ops, reader" in result.output
    assert "LOG_LEVEL=INFO" in env_file.read_text() and env_file.read_text().count("API_KEYS=") == 1
    assert keys["ops"] not in env_file.read_text()  # only hashes are written
    settings = PolicySettings(_env_file=env_file)
    auth = Authenticator(settings.api_keys, RateLimit.parse("100/1s"))
    assert auth.authenticate(keys["ops"]).allows(Scope.TRAIN) and auth.authenticate(keys["reader"]).name == "reader"
    again = runner.invoke(app, ["keys", "new", "--name", "ops", "--append", "--env-file", str(env_file)],
                          env={"COLUMNS": "300"})
    assert again.exit_code != 0 and "already in API_KEYS" in again.output


def test_keys_new_refuses_a_broken_api_keys_value(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("API_KEYS={not json\n")
    result = runner.invoke(app, ["keys", "new", "--name", "ops", "--append", "--env-file", str(env_file)],
                           env={"COLUMNS": "300"})
    assert result.exit_code != 0 and "is not a JSON list of key entries" in result.output
    assert env_file.read_text() == "API_KEYS={not json\n"


def test_risk_state_shows_dollars_to_the_cent(fake_execution_api: list[tuple[str, str]]) -> None:
    result = runner.invoke(app, ["risk", "state"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "-1,289.00" in result.output and "999999" not in result.output
