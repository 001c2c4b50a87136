"""Attack on the local stack (issue #15 item 8): execution trades on whatever is written to the
streams, so the embedded Redis that ``scalper stack up`` starts must not take writes without a password."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import redis

from scalper_cli.infra import Infrastructure, redis_answers, start_embedded_redis, stop_targets
from scalper_cli.processes import stop_processes
from scalper_cli.settings import StackSettings


@pytest.mark.integration
def test_the_embedded_redis_refuses_a_client_without_the_generated_password(tmp_path: Path,
                                                                            monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SCALPER_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("SCALPER_EMBEDDED_REDIS_PASSWORD", raising=False)
    settings = StackSettings()
    url, server = start_embedded_redis(settings, 0)
    try:
        password_file = tmp_path / "redis" / "password"
        password = password_file.read_text().strip()
        assert len(password) >= 32 and stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert password in url and redis_answers(url, 2.0)  # the URL the services get carries it
        anonymous = redis.Redis(host="127.0.0.1", port=redis.Redis.from_url(url).connection_pool
                                .connection_kwargs["port"])
        with pytest.raises(redis.AuthenticationError):
            anonymous.xadd("policy.decisions", {"envelope": b"forged"})
        anonymous.close()
        with open(f"/proc/{server.pid}/cmdline", "rb") as cmdline:
            assert password.encode() not in cmdline.read()  # never on the command line (ps)
    finally:
        stop_processes(stop_targets(Infrastructure(redis_url=url, database_url="", embedded=[server])), 10.0)
    again = StackSettings()
    url2, server2 = start_embedded_redis(again, 0)  # the next `stack up` reuses the same password
    try:
        assert password in url2
    finally:
        stop_processes(stop_targets(Infrastructure(redis_url=url2, database_url="", embedded=[server2])), 10.0)
