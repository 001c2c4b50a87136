"""Helpers of the training tests: a private redis-server, API keys, and a policy app over them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import redis
from fastapi.testclient import TestClient

from scalper_cli.processes import free_port
from scalper_policy.app import build_policy_app
from scalper_policy.settings import PolicySettings
from scalper_shared.runtime.api_security import ApiKeyRecord, Scope, hash_key
from scalper_shared.runtime.bootstrap import connect
from tests.waiting import wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
KEYS = {"trainer-key": {Scope.TRAIN, Scope.READ}, "reader-key": {Scope.READ}, "admin-key": {Scope.ADMIN}}


@contextmanager
def private_redis_server(directory: Path) -> Iterator[str]:
    """A redis-server of one test alone (RQ's keys cannot be prefixed); yields its URL."""
    port = free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                             "--save", "", "--appendonly", "no", "--protected-mode", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    probe = redis.Redis.from_url(url, socket_connect_timeout=0.2)

    def answers() -> bool:
        try:
            return bool(probe.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    try:
        wait_until(answers, 20, f"redis-server on port {port}", 0.05)
        yield url
    finally:
        probe.close()
        proc.terminate()
        proc.wait(10)


def policy_client(redis_url: str, database_url: str, artifacts_dir: Path, stream_prefix: str = "") -> TestClient:
    """The real policy app (training and model routes) over the given Redis and database."""
    settings = PolicySettings(
        redis_url=redis_url, database_url=database_url, artifacts_dir=artifacts_dir, api_rate_limit="1000/1s",
        stream_prefix=stream_prefix,
        api_keys=[ApiKeyRecord(name=k, sha256=hash_key(k), scopes=frozenset(s)) for k, s in KEYS.items()])
    return TestClient(build_policy_app(settings, connect(settings)))


def headers(key: str, **extra: str) -> dict[str, str]:
    return {"X-API-Key": key, **extra}


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "scalper_trainer"], env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the worker and its work-horse (RQ puts the horse in a session of its own)."""
        assert self.proc is not None
        for horse in psutil.Process(self.proc.pid).children(recursive=True):
            horse.kill()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
