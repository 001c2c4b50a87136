"""Consumers and a producer keep going through a restart of their (private, AOF-backed) Redis server."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from scalper_cli.processes import free_port
from scalper_shared.bus import ConsumerConfig, ConsumerRunner, Delivery, StreamProducer
from tests.bus_messages import GROUP, STREAM, decision_envelope
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
MESSAGES = 6000
OUTAGE_S = 2.0


def envelope(n: int):  # noqa: ANN201 - an Envelope
    return decision_envelope(f"msg-{n}")


class PrivateRedis:
    """A redis-server of this test alone, persisting every write to its append-only file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_until(lambda: _answers(probe), 20, f"redis-server on port {self.port}")
        probe.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


class Seen:
    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, batch: Sequence[Delivery]) -> None:
        with self.lock:
            self.ids.update(d.envelope.id for d in batch)

    def count(self) -> int:
        with self.lock:
            return len(self.ids)


def publish_through_outages(producer: StreamProducer, published: list[int]) -> None:
    """Publish every message, retrying a chunk while the server is away (a retry may duplicate)."""
    for start in range(0, MESSAGES, 50):
        chunk = [envelope(n) for n in range(start, min(start + 50, MESSAGES))]
        while True:
            try:
                producer.publish_many(chunk)
                break
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.05)
        published[0] = start + len(chunk)
        time.sleep(0.002)


def reconnects() -> float:
    return REGISTRY.get_sample_value("scalper_bus_reconnects_total", {"stream": STREAM, "group": GROUP}) or 0.0


def test_consumers_and_producer_survive_a_redis_restart(private_redis: PrivateRedis) -> None:
    def client() -> redis.Redis:
        # one quick client-level retry only: the outage must outlast it so the runners' loop recovers
        return redis.Redis(port=private_redis.port, socket_connect_timeout=0.5, socket_timeout=5,
                           retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1))

    config = ConsumerConfig(batch_size=50, block_ms=100, claim_idle_ms=500, claim_interval_ms=200,
                            metrics_interval_s=0.5, reconnect_initial_s=0.05, reconnect_max_s=0.5)
    seen = Seen()
    runners = [ConsumerRunner(client(), STREAM, GROUP, f"c{i}", seen, config=config) for i in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    reconnects_before = reconnects()
    published = [0]
    producer = StreamProducer(client(), STREAM, maxlen=100_000)
    publisher = threading.Thread(target=publish_through_outages, args=(producer, published), daemon=True)
    publisher.start()
    try:
        wait_until(lambda: published[0] >= MESSAGES // 3 and seen.count() > 0, 60, "a third published")
        private_redis.kill()
        at_kill = (published[0], seen.count())
        time.sleep(OUTAGE_S)  # longer than redis-py's own retries, so the runners' reconnect loop works
        private_redis.start()
        publisher.join(120)
        wait_until(lambda: seen.count() == MESSAGES, 60, f"all {MESSAGES} processed")
        checker = client()
        wait_until(lambda: int(checker.xpending(STREAM, GROUP)["pending"]) == 0, 30, "nothing pending")
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert at_kill[0] < MESSAGES and at_kill[1] < MESSAGES, f"the restart came too late: {at_kill}"
    assert seen.ids == {f"msg-{n}" for n in range(MESSAGES)}
    assert not any(thread.is_alive() for thread in threads)
    assert reconnects() - reconnects_before >= len(runners)  # each runner saw the outage and recovered
