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
from scalper_shared.core.ratelimit import RateLimit
from scalper_shared.runtime.api_security import ApiKeyRecord, Authenticator, Scope, hash_key

runner = CliRunner()


def test_keys_new_prints_a_key_whose_hash_is_the_entry() -> None:
    result = runner.invoke(app, ["keys", "new", "--name", "ops", "--scopes", "read,trade"])
    assert result.exit_code == 0, result.output
    key = result.output.split("key (shown once): ")[1].split()[0]
    entry = json.loads(result.output.split("API_KEYS entry:")[1])
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
    def command(command: str, body: dict) -> dict:
        calls.append((command, body["reason"]))
        return {"trading_state": "halted", "open_positions": 0}

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
