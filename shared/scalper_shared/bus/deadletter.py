"""The dead-letter stream of a stream: entries the runner gave up on, with why.

Moving an entry there is one Lua script: it checks that the calling consumer still owns the pending
entry (another consumer may have reclaimed it meanwhile), appends it with the error, the original id,
stream, group, consumer and delivery count (from the pending list), and acknowledges it. So an entry
is dead-lettered at most once. Handler errors are kept for a while under ``error_key`` so that the
consumer that finally dead-letters an entry reports the last error even if another one saw it.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from scalper_shared.bus.groups import text
from scalper_shared.schema import streams

ERROR_TTL_S = 7 * 24 * 3600
UNKNOWN_ERROR = "no error recorded (a consumer crashed while handling it?)"

_MOVE = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
local err = ARGV[5]
if err == '' then err = redis.call('GET', KEYS[3]) or ARGV[6] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'envelope', ARGV[7], 'error', err,
           'original_id', ARGV[3], 'stream', KEYS[1], 'group', ARGV[1], 'consumer', ARGV[2],
           'deliveries', pending[1][4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('DEL', KEYS[3])
return 1
"""


def error_key(stream_key: str, group: str, entry_id: str) -> str:
    """Where the last handler error of an entry is kept (expires after ``ERROR_TTL_S``)."""
    return f"{stream_key}.errors:{group}:{entry_id}"


def record_error(client: redis.Redis, stream_key: str, group: str, entry_id: str, error: str) -> None:
    client.set(error_key(stream_key, group, entry_id), error, ex=ERROR_TTL_S)


def move_to_dead_letter(client: redis.Redis, stream_key: str, dead_letter_key: str, *, group: str,
                        consumer: str, entry_id: str, data: bytes | str, error: str | None,
                        maxlen: int) -> bool:
    """Dead-letter and acknowledge a pending entry this consumer owns; ``error=None`` reports the last
    recorded error. False when the entry is no longer this consumer's (acked or reclaimed)."""
    keys = [stream_key, dead_letter_key, error_key(stream_key, group, entry_id)]
    args: list[bytes | str | int] = [group, consumer, entry_id, maxlen, error or "", UNKNOWN_ERROR, data]
    return bool(client.eval(_MOVE, len(keys), *keys, *args))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    original_id: str
    stream: str
    group: str
    consumer: str
    deliveries: int
    error: str
    envelope: bytes
    """The entry's raw ``envelope`` field (empty when it had none)."""


def read_dead_letters(client: redis.Redis, stream: str, *, prefix: str = "",
                      count: int = 1000) -> list[DeadLetter]:
    """The oldest ``count`` dead letters of ``prefix + stream``."""
    rows = client.xrange(prefix + streams.dead_letter(stream), count=count) or []
    return [_dead_letter(text(entry_id), {text(k): v for k, v in (fields or {}).items()})
            for entry_id, fields in rows]


def _dead_letter(entry_id: str, fields: dict[str, bytes | str]) -> DeadLetter:
    raw = fields.get("envelope", b"")
    return DeadLetter(
        id=entry_id,
        original_id=text(fields["original_id"]),
        stream=text(fields["stream"]),
        group=text(fields["group"]),
        consumer=text(fields["consumer"]),
        deliveries=int(text(fields["deliveries"])),
        error=text(fields["error"]),
        envelope=raw.encode() if isinstance(raw, str) else raw,
    )
