"""Exactly-once side effects under SIGKILL: 50,000 messages, 3 consumer processes, 10 random kills."""

from __future__ import annotations

import logging
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis

from scalper_shared.bus import StreamProducer, group_backlog, read_dead_letters
from tests.bus_messages import GROUP, STREAM, decision_envelope
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]
logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("bus_consumer_process.py")
MESSAGES = 50_000
POISON_ID = "poison-1"
MAX_DELIVERIES = 3
KILLS = 10
SCHEMA = [
    "CREATE TABLE bus_delivered (message_id text PRIMARY KEY, entry_id text NOT NULL, consumer text NOT NULL)",
    "CREATE TABLE bus_batches (consumer text NOT NULL, received int NOT NULL, inserted int NOT NULL)",
]


def envelope(message_id: str):  # noqa: ANN201 - an Envelope
    return decision_envelope(message_id)


class ConsumerProcesses:
    """The consumer processes of the test, by name, each logging to its own file."""

    def __init__(self, args: list[str], log_dir: Path) -> None:
        self.args = args
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        """Start consumer ``name`` and wait until it has joined the group."""
        ready = self.log_dir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, str(SCRIPT), *self.args, "--name", name, "--ready-file", str(ready)],
                stdout=log, stderr=log)
        wait_until(ready.exists, 30, self.logs)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def stop_all(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return {name: _wait(proc) for name, proc in self.procs.items()}

    def logs(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.log_dir.glob("*.log")))


def _wait(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def message_ids(rng: random.Random) -> list[str]:
    ids = [f"msg-{n}" for n in range(MESSAGES)]
    ids.insert(rng.randrange(MESSAGES // 4, MESSAGES // 2), POISON_ID)
    return ids


class GatedPublisher(threading.Thread):
    """Publishes ``ids`` in chunks, segment by segment; segment k+1 waits for the k-th kill, so the
    kills are spread over the whole stream and land while work is flowing."""

    def __init__(self, producer: StreamProducer, ids: list[str], segments: int) -> None:
        super().__init__(daemon=True)
        self.producer, self.ids = producer, ids
        self.segment = len(ids) // segments + 1
        self.kills_done = threading.Semaphore(0)
        self.segment_started = [threading.Event() for _ in range(segments)]
        self.segment_published = [threading.Event() for _ in range(segments)]
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for k, event in enumerate(self.segment_started):
                if k:
                    self.kills_done.acquire()
                event.set()
                part = self.ids[k * self.segment:(k + 1) * self.segment]
                for start in range(0, len(part), 100):
                    self.producer.publish_many([envelope(i) for i in part[start:start + 100]])
                self.segment_published[k].set()
        except BaseException as exc:  # surfaced by the test
            self.error = exc
            raise


def test_every_message_is_committed_exactly_once_while_consumers_are_killed(
        redis_url: str, stream_prefix: str, database_url: str, tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    logger.info("delivery test seed %s", seed)
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for statement in SCHEMA:
            conn.execute(statement)
    client = redis.Redis.from_url(redis_url)
    key = stream_prefix + STREAM
    consumers = ConsumerProcesses(
        ["--redis-url", redis_url, "--prefix", stream_prefix, "--stream", STREAM, "--group", GROUP,
         "--database-url", database_url, "--poison-id", POISON_ID, "--max-deliveries", str(MAX_DELIVERIES),
         "--batch-size", "200", "--claim-idle-ms", "1000", "--claim-interval-ms", "250"], tmp_path)
    names = ["consumer-a", "consumer-b", "consumer-c"]
    started = time.perf_counter()
    for name in names:
        consumers.start(name)
    producer = StreamProducer(client, STREAM, maxlen=200_000, prefix=stream_prefix)
    publisher = GatedPublisher(producer, message_ids(rng), KILLS + 1)
    publisher.start()

    def committed() -> int:
        with psycopg.connect(conninfo) as conn:
            return conn.execute("SELECT count(*) FROM bus_delivered").fetchone()[0]  # type: ignore[index]

    def pending_of(consumer: str) -> int:
        return next((c["pending"] for c in client.xpending(key, GROUP)["consumers"]
                     if c["name"].decode() == consumer), 0)

    def drained(k: int) -> bool:
        backlog = group_backlog(client, key, GROUP)
        return publisher.segment_published[k].is_set() and (backlog is None or backlog.unprocessed == 0)

    kills = []
    try:
        for k in range(KILLS):
            publisher.segment_started[k].wait(60)
            victim = rng.choice(names)
            target = committed() + rng.randrange(publisher.segment // 2)  # a random point of the segment,
            wait_until(lambda k=k, target=target: committed() >= target or drained(k), 60,  # then the first
                       "the kill point", poll_s=0.005)                       # moment the victim holds a batch
            wait_until(lambda k=k, victim=victim: pending_of(victim) > 0 or drained(k), 60,
                       "the victim to hold a batch", poll_s=0.001)
            backlog = group_backlog(client, key, GROUP)
            consumers.kill(victim)
            left = pending_of(victim)
            kills.append((victim, backlog.unprocessed if backlog else 0, left, committed()))
            consumers.start(victim)
            publisher.kills_done.release()
        publisher.join(120)
        assert publisher.error is None and not publisher.is_alive()

        def done() -> bool:
            backlog = group_backlog(client, key, GROUP)
            return (committed() == MESSAGES and backlog is not None and backlog.pending == 0
                    and backlog.lag == 0 and len(read_dead_letters(client, STREAM, prefix=stream_prefix)) == 1)

        wait_until(done, 90, lambda: f"{committed()} rows, {group_backlog(client, key, GROUP)}\n{consumers.logs()}")
        elapsed = time.perf_counter() - started
    finally:
        exit_codes = consumers.stop_all()

    logger.info("delivered %s messages through 3 consumers and %s SIGKILLs in %.1fs (%.0f msg/s); kills "
                "(victim, group backlog, its pending, rows) %s", MESSAGES, KILLS, elapsed, MESSAGES / elapsed, kills)
    assert any(left > 0 for _, _, left, _ in kills), f"no kill interrupted a batch in hand: {kills}"
    with psycopg.connect(conninfo) as conn:
        total, distinct = conn.execute("SELECT count(*), count(DISTINCT message_id) FROM bus_delivered").fetchone()
        expected = conn.execute(
            "SELECT count(*) FROM generate_series(0, %s - 1) n JOIN bus_delivered d ON d.message_id = 'msg-' || n",
            (MESSAGES,)).fetchone()[0]
        received, inserted = conn.execute("SELECT sum(received), sum(inserted) FROM bus_batches").fetchone()
    assert (total, distinct, expected) == (MESSAGES, MESSAGES, MESSAGES)
    assert inserted == MESSAGES
    logger.info("handler calls committed %s deliveries; %s were redeliveries absorbed by ON CONFLICT",
                received, received - inserted)
    [dead] = read_dead_letters(client, STREAM, prefix=stream_prefix)
    assert (dead.group, dead.stream) == (GROUP, key)
    assert dead.deliveries >= MAX_DELIVERIES  # more if a consumer was killed while it held the poison
    assert f"PoisonError: message {POISON_ID} always fails" in dead.error
    assert int(client.xpending(key, GROUP)["pending"]) == 0
    assert exit_codes == dict.fromkeys(names, 0), f"graceful SIGTERM exit codes {exit_codes}"
    client.close()
