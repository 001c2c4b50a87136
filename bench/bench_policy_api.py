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
    import uvicorn

    from scalper_policy.app import build_policy_app
    from scalper_policy.inference import ModelHolder, load_served_model
    from scalper_policy.live import LiveState
    from scalper_policy.serving import PolicyRuntime
    from scalper_policy.settings import PolicySettings
    from scalper_shared.clock import SystemClock
    from scalper_shared.core.features import FEATURE_SPEC
    from scalper_shared.runtime.api_security import ApiKeyRecord, Scope, hash_key
    from scalper_shared.runtime.bootstrap import connect

    settings = PolicySettings(api_keys=[ApiKeyRecord(name="bench", sha256=hash_key(KEY), scopes=frozenset({Scope.INFER}))],
                              api_rate_limit="1000000/1s", decisions_enabled=False)
    clock = SystemClock()
    model = load_served_model("bench-model", Path(artifact_root), expected_spec_hash=FEATURE_SPEC.spec_hash,
                              loaded_at=clock.now())
    runtime = PolicyRuntime(ModelHolder(model), LiveState(), clock)
    app = build_policy_app(settings, connect(settings), runtime)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


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


async def _paced(client: httpx.AsyncClient, body: dict) -> list[float]:
    """Open-loop at PACED_RATE: each of CONNECTIONS workers sends its share of the schedule.

    Latency is measured from the scheduled send time, so a server that falls behind is charged
    for the wait (no coordinated omission). The JSON body is encoded once, as a real client would.
    """
    latencies: list[float] = []
    interval = 1.0 / PACED_RATE
    total = int(PACED_RATE * PACED_SECONDS)
    content = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    start = time.perf_counter() + 0.1

    async def worker(first: int) -> None:
        for slot in range(first, total, CONNECTIONS):
            due = start + slot * interval
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            response = await client.post("/v1/policy/action", content=content, headers=headers)
            response.raise_for_status()
            latencies.append(time.perf_counter() - due)

    await asyncio.gather(*(worker(k) for k in range(CONNECTIONS)))
    return latencies


async def _max_rate(client: httpx.AsyncClient, method: str, path: str, body: dict | None) -> float:
    done = 0
    deadline = time.perf_counter() + MAX_SECONDS

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            response = await client.request(method, path, json=body)
            response.raise_for_status()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return done / (time.perf_counter() - started)


async def _drive(base_url: str, body: dict) -> None:
    limits = httpx.Limits(max_connections=CONNECTIONS * 4, max_keepalive_connections=CONNECTIONS * 4)
    async with httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": KEY}, limits=limits, timeout=30) as client:
        for _ in range(200):  # warm up
            (await client.post("/v1/policy/action", json=body)).raise_for_status()
        latencies = np.asarray(await _paced(client, body)) * 1000
        noop = await _max_rate(client, "GET", "/healthz", None)
        action = await _max_rate(client, "POST", "/v1/policy/action", body)
    print(f"POST /v1/policy/action at {PACED_RATE:.0f} req/s for {PACED_SECONDS:.0f}s: p50 {np.percentile(latencies, 50):.2f} ms, "
          f"p99 {np.percentile(latencies, 99):.2f} ms, max {latencies.max():.2f} ms (goal p99 <= 10 ms)")
    print(f"max req/s ({CONNECTIONS} keep-alive connections, {MAX_SECONDS:.0f}s each): GET /healthz {noop:.0f}, "
          f"POST /v1/policy/action {action:.0f} = {100 * action / noop:.0f}% of the no-op (goal >= 40%)")


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
            asyncio.run(_drive(base_url, {"symbol": "SPY", "observation": obs.tolist()}))
        finally:
            server.terminate()
            server.wait(30)
        print(f"(machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; server and load generator share them)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
