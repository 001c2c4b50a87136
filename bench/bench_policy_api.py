"""Policy API: POST /v1/policy/action (explicit observation) against the app served by uvicorn on
127.0.0.1, driven from this (second) process; next to GET /healthz of the same app, same run.

Prints in-process numpy inference per call, p50/p99 latency at a paced 200 requests/s, and the
maximum requests/s of both endpoints (closed loop, several keep-alive connections).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from scalper_cli.processes import free_port

PACED_RATE = 200.0
PACED_SECONDS = 5.0
MAX_SECONDS = 5.0
CONNECTIONS = 8
KEY = "bench-infer-key"


def serve(artifact_root: str, port: int) -> None:
    """The server side (run in a child process): the policy app with one served model, no workers."""
    from scalper_policy.app import build_policy_app
    from scalper_policy.inference import ModelHolder, load_served_model
    from scalper_policy.live import LiveState
    from scalper_policy.serving import PolicyRuntime
    from scalper_policy.settings import PolicySettings
    from scalper_shared.clock import SystemClock
    from scalper_shared.core.features import FEATURE_SPEC
    from scalper_shared.runtime.api_security import ApiKeyRecord, Scope, hash_key
    from scalper_shared.runtime.app import serve as serve_app
    from scalper_shared.runtime.bootstrap import connect

    settings = PolicySettings(api_keys=[ApiKeyRecord(name="bench", sha256=hash_key(KEY), scopes=frozenset({Scope.INFER}))],
                              api_rate_limit="1000000/1s", decisions_enabled=False)
    clock = SystemClock()
    model = load_served_model("bench-model", Path(artifact_root), expected_spec_hash=FEATURE_SPEC.spec_hash,
                              loaded_at=clock.now())
    runtime = PolicyRuntime(ModelHolder(model), LiveState(), clock)
    app = build_policy_app(settings, connect(settings), runtime)
    serve_app(app, "127.0.0.1", port)  # as the service serves it (uvloop + httptools when installed)


def _artifact(root: Path) -> Path:
    import json

    from scalper_shared.core.actions import N_ACTIONS
    from scalper_shared.core.features import FEATURE_SPEC
    from scalper_shared.core.policy_net import NumpyPolicy

    rng = np.random.default_rng(0)
    sizes = (FEATURE_SPEC.window * FEATURE_SPEC.n_features, 64, 64)  # SB3's default MlpPolicy actor
    hidden = tuple((rng.normal(0, 0.1, (a, b)), rng.normal(0, 0.1, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    NumpyPolicy(hidden=hidden, head=(rng.normal(0, 0.1, (64, N_ACTIONS)), np.zeros(N_ACTIONS))).save(root / "policy.npz")
    (root / "manifest.json").write_text(json.dumps({"feature_spec_hash": FEATURE_SPEC.spec_hash}))
    return root


def _in_process(root: Path) -> float:
    from datetime import UTC, datetime

    from scalper_policy.inference import decide, load_served_model
    from scalper_policy.live import MaskInputs
    from scalper_shared.core.features import FEATURE_SPEC

    model = load_served_model("m", root, expected_spec_hash=FEATURE_SPEC.spec_hash, loaded_at=datetime.now(UTC))
    obs = np.random.default_rng(1).normal(0, 1, (FEATURE_SPEC.window, FEATURE_SPEC.n_features))
    mask = MaskInputs(minutes_to_close=200).mask()
    n = 20_000
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            decide(model, obs, mask)
        best = min(best, (time.perf_counter() - started) / n)
    return best


class RawConnection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded requests: a load generator as light
    as ``wrk``'s, so the figures are the server's, not a Python HTTP client's (httpx costs ~1 ms of
    CPU per request, on the same 2 cores as the server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, request: bytes) -> bytes:
        """Send one request; returns the body of its 200 response (raises on any other status)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head[9:12]
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line[:15].lower() == b"content-length:")
        body = await self.reader.readexactly(length)
        if status != b"200":
            raise RuntimeError(f"HTTP {status.decode()}: {body[:300]!r}")
        return body

    def close(self) -> None:
        self.writer.close()


def encode_request(method: str, path: str, body: dict | None = None) -> bytes:
    content = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {KEY}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(content)}\r\n\r\n")
    return head.encode() + content


async def _paced(connections: list[RawConnection], request: bytes) -> list[float]:
    """Open-loop at PACED_RATE: each connection sends its share of the schedule.

    Latency is measured from the scheduled send time, so a server that falls behind is charged
    for the wait (no coordinated omission).
    """
    latencies: list[float] = []
    interval = 1.0 / PACED_RATE
    total = int(PACED_RATE * PACED_SECONDS)
    start = time.perf_counter() + 0.1

    async def worker(first: int, connection: RawConnection) -> None:
        for slot in range(first, total, len(connections)):
            due = start + slot * interval
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await connection.send(request)
            latencies.append(time.perf_counter() - due)

    await asyncio.gather(*(worker(k, c) for k, c in enumerate(connections)))
    return latencies


async def _max_rate(connections: list[RawConnection], request: bytes) -> float:
    done = 0
    deadline = time.perf_counter() + MAX_SECONDS

    async def worker(connection: RawConnection) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await connection.send(request)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    return done / (time.perf_counter() - started)


async def _drive(port: int, body: dict) -> None:
    action = encode_request("POST", "/v1/policy/action", body)
    noop = encode_request("GET", "/healthz")
    connections = [await RawConnection.open(port) for _ in range(CONNECTIONS)]
    try:
        json.loads(await connections[0].send(action))  # a well-formed answer
        for _ in range(200 // CONNECTIONS):  # warm up
            await asyncio.gather(*(c.send(action) for c in connections))
        latencies = np.asarray(await _paced(connections, action)) * 1000
        noop_rate = await _max_rate(connections, noop)
        action_rate = await _max_rate(connections, action)
    finally:
        for connection in connections:
            connection.close()
    print(f"POST /v1/policy/action at {PACED_RATE:.0f} req/s for {PACED_SECONDS:.0f}s: p50 {np.percentile(latencies, 50):.2f} ms, "
          f"p99 {np.percentile(latencies, 99):.2f} ms, max {latencies.max():.2f} ms (goal p99 <= 10 ms)")
    print(f"max req/s ({CONNECTIONS} keep-alive connections, {MAX_SECONDS:.0f}s each): GET /healthz {noop_rate:.0f}, "
          f"POST /v1/policy/action {action_rate:.0f} = {100 * action_rate / noop_rate:.0f}% of the no-op (goal >= 40%)")


def _wait_ready(base_url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the policy server exited with {server.returncode}")
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the policy server did not answer /healthz within 60s")


def main() -> None:
    from scalper_shared.core.features import FEATURE_SPEC

    with tempfile.TemporaryDirectory() as tmp:
        root = _artifact(Path(tmp))
        print(f"in-process numpy inference (decide: 460-64-64-6 MLP + masked softmax): "
              f"{_in_process(root) * 1e6:.1f} us per call (goal <= 50 us)")
        port = free_port()
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        server = subprocess.Popen([sys.executable, "-m", "bench.bench_policy_api", "serve", str(root), str(port)],
                                  env=env, cwd=Path(__file__).resolve().parents[1])
        try:
            base_url = f"http://127.0.0.1:{port}"
            _wait_ready(base_url, server)
            obs = np.random.default_rng(2).normal(0, 1, (FEATURE_SPEC.window, FEATURE_SPEC.n_features)).round(6)
            asyncio.run(_drive(port, {"symbol": "SPY", "observation": obs.tolist()}))
        finally:
            server.terminate()
            server.wait(30)
        print(f"(machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; server and load generator share them)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
