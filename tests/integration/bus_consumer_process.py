"""A consumer process for the bus delivery tests: one ConsumerRunner whose handler commits one row
per message (primary key = envelope id, ``ON CONFLICT DO NOTHING``) in one transaction per batch.

Run: python bus_consumer_process.py --redis-url URL --prefix P --stream S --group G --name N
     --database-url URL [--poison-id ID] [--ready-file PATH] [--batch-size N] [--claim-idle-ms N] ...
SIGTERM stops it after the batch in hand is committed and acknowledged (exit status 0).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import psycopg
import redis

from scalper_shared.bus import ConsumerConfig, ConsumerRunner, Delivery

INSERT_ROWS = """
    INSERT INTO bus_delivered (message_id, entry_id, consumer)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])
    ON CONFLICT (message_id) DO NOTHING
"""
LOG_BATCH = "INSERT INTO bus_batches (consumer, received, inserted) VALUES (%s, %s, %s)"


class PoisonError(RuntimeError):
    pass


def make_handler(conn: psycopg.Connection, name: str, poison_id: str | None):  # noqa: ANN201
    def handle(batch: Sequence[Delivery]) -> None:
        ids = [d.envelope.id for d in batch]
        with conn.transaction():
            inserted = conn.execute(INSERT_ROWS, (ids, [d.id for d in batch], [name] * len(ids))).rowcount
            if poison_id in ids:
                raise PoisonError(f"message {poison_id} always fails")  # rolls the batch back
            conn.execute(LOG_BATCH, (name, len(ids), inserted))

    return handle


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--redis-url", "--prefix", "--stream", "--group", "--name", "--database-url"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--poison-id")
    parser.add_argument("--ready-file", type=Path, help="created once the consumer has joined its group")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--block-ms", type=int, default=200)
    parser.add_argument("--claim-idle-ms", type=int, default=1000)
    parser.add_argument("--claim-interval-ms", type=int, default=250)
    parser.add_argument("--max-deliveries", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {args.name} %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    config = ConsumerConfig(batch_size=args.batch_size, block_ms=args.block_ms,
                            claim_idle_ms=args.claim_idle_ms, claim_interval_ms=args.claim_interval_ms,
                            max_deliveries=args.max_deliveries, metrics_interval_s=1.0)
    client = redis.Redis.from_url(args.redis_url, socket_connect_timeout=2, socket_timeout=10)
    conninfo = args.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        runner = ConsumerRunner(client, args.stream, args.group, args.name,
                                make_handler(conn, args.name, args.poison_id), config=config, prefix=args.prefix)
        runner.ensure_group()
        if args.ready_file:
            args.ready_file.touch()
        runner.run(stop)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
