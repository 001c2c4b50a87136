"""The one consumer-group runner every service uses.

Delivery is at least once: an entry is acknowledged only after the handler returned, so the handler
must commit its side effect idempotently (unique keys, ``ON CONFLICT``) and, when it raises, leave
nothing half-written (one transaction per call). A failed batch is retried entry by entry so one
poison message does not hold back the others; an entry that failed is retried when it is reclaimed
(``XAUTOCLAIM`` after ``claim_idle_ms``, which also rescues the entries of crashed consumers) and
goes to the dead-letter stream once it has failed ``max_deliveries`` deliveries. Deliveries that
ended in a crash of the consumer holding the entry record no failure: such an entry is dead-lettered
only past ``CRASH_DELIVERIES_FACTOR`` times ``max_deliveries`` (an entry that kills every consumer
must end somewhere, but the healthy entries of a batch whose consumer died must not). Entries that
cannot be decoded, or whose type is not registered on the stream (``scalper_shared.schema.streams``),
are dead-lettered at once. The group must be one the registry lists on the stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from scalper_shared.bus import metrics
from scalper_shared.bus.config import ConsumerConfig
from scalper_shared.bus.deadletter import error_key, move_to_dead_letter, record_error
from scalper_shared.bus.groups import group_backlog, text
from scalper_shared.bus.producer import ENVELOPE_FIELD
from scalper_shared.schema import CODEC, Codec, DecodeError, Envelope, streams

if TYPE_CHECKING:
    from scalper_shared.runtime.app import ThreadWorker

logger = logging.getLogger(__name__)

CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)
MAX_ERROR_CHARS = 2000
CRASH_DELIVERIES_FACTOR = 4
GATE_WAIT_S = 0.2


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry handed to a handler."""

    id: str
    envelope: Envelope
    deliveries: int
    """How many times the entry has been delivered to the group, this time included."""


Handler = Callable[[Sequence[Delivery]], None]


@dataclass(frozen=True, slots=True)
class _Entry:
    id: str
    data: bytes | str | None
    deliveries: int


class ConsumerRunner:
    """Consumes ``prefix + stream`` as ``consumer_name`` of ``group``, calling ``handler`` per batch.

    ``stream`` and ``group`` must be registered (``streams.group_of(service, stream)``); StreamError
    otherwise."""

    def __init__(
        self,
        redis_client: redis.Redis,
        stream: str,
        group: str,
        consumer_name: str,
        handler: Handler,
        *,
        config: ConsumerConfig,
        prefix: str = "",
        codec: Codec = CODEC,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        """``gate``: when given, the loop reads only while it returns True (e.g. while this replica
        holds a lease); otherwise it waits ``GATE_WAIT_S`` and asks again."""
        streams.check_group(stream, group)
        self._types = frozenset(streams.spec(stream).type_names)
        self.key = prefix + stream
        self._gate = gate
        self.dead_letter_key = prefix + streams.dead_letter(stream)
        self.group = group
        self.consumer_name = consumer_name
        self.config = config
        self._redis = redis_client
        self._handler = handler
        self._codec = codec
        self._group_ready = False
        self._next_claim = 0.0
        self._next_metrics = 0.0
        self._labels = (self.key, group)

    # -- loop -----------------------------------------------------------------------------------

    def run(self, stop_event: threading.Event) -> None:
        """Consume until ``stop_event`` is set; the batch in hand is finished and acknowledged first."""
        logger.info("consumer %s of group %s on %s started", self.consumer_name, self.group, self.key)
        delay = self.config.reconnect_initial_s
        failed_attempts = 0
        while not stop_event.is_set():
            if self._gate is not None and not self._gate():
                stop_event.wait(GATE_WAIT_S)
                continue
            try:
                self.poll(stop_event)
                if failed_attempts:
                    logger.info("consumer %s on %s is back on Redis after %s failed attempts",
                                self.consumer_name, self.key, failed_attempts)
                delay, failed_attempts = self.config.reconnect_initial_s, 0
            except CONNECTION_ERRORS as exc:
                failed_attempts += 1
                self._group_ready = False
                metrics.RECONNECTS.labels(*self._labels).inc()
                logger.warning("consumer %s on %s lost Redis (%s); retrying in %.1fs",
                               self.consumer_name, self.key, exc, delay)
                stop_event.wait(delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
            except redis.ResponseError as exc:
                if not _is_nogroup(exc):
                    raise
                self._group_ready = False
                logger.warning("group %s of %s vanished (%s); recreating it", self.group, self.key, exc)
        logger.info("consumer %s of group %s on %s stopped", self.consumer_name, self.group, self.key)

    def poll(self, stop_event: threading.Event | None = None) -> int:
        """One step: ensure the group, reclaim and refresh metrics when due, read one batch."""
        stop_event = stop_event or threading.Event()
        if not self._group_ready:
            self.ensure_group()
        now = time.monotonic()
        handled = 0
        if now >= self._next_claim:
            self._next_claim = now + self.config.claim_interval_s
            handled += self.reclaim(stop_event)
        if now >= self._next_metrics:
            self._next_metrics = now + self.config.metrics_interval_s
            self.refresh_metrics()
        if not stop_event.is_set():
            handled += self._read_new()
        return handled

    def as_worker(self, name: str | None = None) -> ThreadWorker:
        """This runner as a ``BackgroundWorker`` for ``build_service_app``."""
        from scalper_shared.runtime.app import ThreadWorker  # keeps FastAPI out of plain consumers

        return ThreadWorker(name or f"consumer:{self.key}:{self.group}:{self.consumer_name}", self.run)

    def ensure_group(self) -> None:
        """Create the group at the start of the stream (and the stream) unless it exists, and register
        this consumer in it (so ``XINFO CONSUMERS`` lists it before its first entry)."""
        try:
            self._redis.xgroup_create(self.key, self.group, id="0", mkstream=True)
            logger.info("created group %s on %s", self.group, self.key)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._redis.xgroup_createconsumer(self.key, self.group, self.consumer_name)
        self._group_ready = True

    # -- reading ----------------------------------------------------------------------------------

    def _read_new(self) -> int:
        reply = self._redis.xreadgroup(self.group, self.consumer_name, {self.key: ">"},
                                       count=self.config.batch_size, block=self.config.block_ms or None)
        entries = [_Entry(text(entry_id), _envelope_field(fields), 1)
                   for entry_id, fields in _stream_entries(reply)]
        if entries:
            self._process(entries)
        return len(entries)

    def reclaim(self, stop_event: threading.Event) -> int:
        """Claim entries idle longer than ``claim_idle_ms`` (crashed or failed) and process them."""
        cursor: Any = "0-0"
        handled = 0
        while not stop_event.is_set():
            reply = self._redis.xautoclaim(self.key, self.group, self.consumer_name,
                                           self.config.claim_idle_ms, cursor, count=self.config.batch_size)
            cursor, claimed = reply[0], reply[1]
            trimmed = [text(entry_id) for entry_id in (reply[2] if len(reply) > 2 else [])]
            trimmed += [text(entry_id) for entry_id, fields in claimed if fields is None]
            present = [(text(entry_id), fields) for entry_id, fields in claimed if fields is not None]
            self._report_trimmed(trimmed)
            if present:
                metrics.RECLAIMED.labels(*self._labels).inc(len(present))
                counts = self._delivery_counts([entry_id for entry_id, _ in present])
                self._process([_Entry(entry_id, _envelope_field(fields), counts.get(entry_id, 1))
                               for entry_id, fields in present])
                handled += len(present)
            if text(cursor) == "0-0":
                break
        return handled

    def _delivery_counts(self, entry_ids: list[str]) -> dict[str, int]:
        pipe = self._redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xpending_range(self.key, self.group, min=entry_id, max=entry_id, count=1)
        counts = {}
        for rows in pipe.execute():
            for row in rows:
                counts[text(row["message_id"])] = int(row["times_delivered"])
        return counts

    def _report_trimmed(self, entry_ids: list[str]) -> None:
        if not entry_ids:
            return
        metrics.TRIMMED_UNPROCESSED.labels(*self._labels).inc(len(entry_ids))
        logger.error("%s entries of %s were trimmed before group %s processed them (first %s)",
                     len(entry_ids), self.key, self.group, entry_ids[0])
        self._redis.xack(self.key, self.group, *entry_ids)  # Redis < 7 keeps them pending

    # -- processing -------------------------------------------------------------------------------

    def _process(self, entries: list[_Entry]) -> None:
        started = time.perf_counter()
        ready: list[Delivery] = []
        for entry in entries:
            delivery = self._decode_or_dead_letter(entry)
            if delivery is None:
                continue
            if self._given_up(entry):
                self._dead_letter(entry, None, "max_deliveries")
            else:
                ready.append(delivery)
        if ready:
            self._handle(ready)
        metrics.BATCH_SECONDS.labels(*self._labels).observe(time.perf_counter() - started)

    def _given_up(self, entry: _Entry) -> bool:
        """Past ``max_deliveries`` after a handler failure, or past the crash allowance without one."""
        limit = self.config.max_deliveries
        if entry.deliveries <= limit:
            return False
        if entry.deliveries > limit * CRASH_DELIVERIES_FACTOR:
            return True
        return bool(self._redis.exists(error_key(self.key, self.group, entry.id)))

    def _decode_or_dead_letter(self, entry: _Entry) -> Delivery | None:
        if entry.data is None:
            self._dead_letter(entry, f"entry has no {ENVELOPE_FIELD!r} field", "undecodable")
            return None
        try:
            envelope = self._codec.decode(entry.data)
        except DecodeError as exc:
            self._dead_letter(entry, f"undecodable: {exc}", "undecodable")
            return None
        if envelope.type not in self._types:
            self._dead_letter(entry, f"message type {envelope.type!r} is not registered on this stream",
                              "unregistered_type")
            return None
        return Delivery(entry.id, envelope, entry.deliveries)

    def _handle(self, batch: list[Delivery]) -> None:
        try:
            self._handler(batch)
        except Exception as exc:
            metrics.HANDLER_FAILURES.labels(*self._labels).inc()
            if len(batch) == 1:
                self._record_failure(batch[0], exc)
                return
            logger.warning("handler failed on a batch of %s from %s (%r); retrying one by one",
                           len(batch), self.key, exc)
            self._handle_one_by_one(batch)
            return
        self._ack([delivery.id for delivery in batch])

    def _handle_one_by_one(self, batch: list[Delivery]) -> None:
        done = []
        for delivery in batch:
            try:
                self._handler([delivery])
            except Exception as exc:
                metrics.HANDLER_FAILURES.labels(*self._labels).inc()
                self._record_failure(delivery, exc)
            else:
                done.append(delivery.id)
        self._ack(done)

    def _record_failure(self, delivery: Delivery, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        if delivery.deliveries >= self.config.max_deliveries:
            entry = _Entry(delivery.id, self._codec.encode(delivery.envelope), delivery.deliveries)
            self._dead_letter(entry, error, "max_deliveries")
            return
        record_error(self._redis, self.key, self.group, delivery.id, error)
        logger.warning("handler failed on entry %s of %s (delivery %s of %s): %s; it stays pending",
                       delivery.id, self.key, delivery.deliveries, self.config.max_deliveries, error)

    def _ack(self, entry_ids: list[str]) -> None:
        if not entry_ids:
            return
        self._redis.xack(self.key, self.group, *entry_ids)
        metrics.PROCESSED.labels(*self._labels).inc(len(entry_ids))

    def _dead_letter(self, entry: _Entry, error: str | None, reason: str) -> None:
        """Move the entry to the dead-letter stream (``error=None``: the last recorded error)."""
        moved = move_to_dead_letter(
            self._redis, self.key, self.dead_letter_key, group=self.group, consumer=self.consumer_name,
            entry_id=entry.id, data=entry.data if entry.data is not None else b"",
            error=error[:MAX_ERROR_CHARS] if error else None, maxlen=self.config.dead_letter_maxlen)
        if not moved:
            logger.info("entry %s of %s was reclaimed or acknowledged elsewhere; not dead-lettering it",
                        entry.id, self.key)
            return
        metrics.DEAD_LETTERED.labels(*self._labels, reason).inc()
        logger.error("dead-lettered entry %s of %s (group %s, %s deliveries, %s) to %s: %s", entry.id,
                     self.key, self.group, entry.deliveries, reason, self.dead_letter_key, error or "see entry")

    # -- metrics ----------------------------------------------------------------------------------

    def refresh_metrics(self) -> None:
        """Export the group's lag (undelivered entries) and pending count."""
        backlog = group_backlog(self._redis, self.key, self.group)
        if backlog is None:
            return
        metrics.GROUP_LAG.labels(*self._labels).set(backlog.lag)
        metrics.GROUP_PENDING.labels(*self._labels).set(backlog.pending)


def _is_nogroup(exc: redis.ResponseError) -> bool:
    return "NOGROUP" in str(exc)


def _stream_entries(reply: Any) -> list[tuple[Any, Any]]:
    """Entries of a one-stream XREADGROUP reply, in RESP2 (list) or RESP3 (dict) shape."""
    if not reply:
        return []
    per_stream = list(reply.values()) if isinstance(reply, dict) else [entries for _, entries in reply]
    flat: list[tuple[Any, Any]] = []
    for entries in per_stream:
        nested = bool(entries) and isinstance(entries[0], list)  # redis-py's RESP3 shape: [[entries]]
        flat.extend(entries[0] if nested else entries)
    return flat


def _envelope_field(fields: dict[Any, Any]) -> bytes | str | None:
    return fields.get(ENVELOPE_FIELD.encode(), fields.get(ENVELOPE_FIELD))
