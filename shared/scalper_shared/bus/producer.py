"""Append envelopes to a Redis stream, trimmed with ``MAXLEN ~``, watching that trimming loses nothing.

Trimming drops the oldest entries whether or not a group has processed them. Before it trims, the
producer checks (at most every ``trim_check_interval_s``) each group's unprocessed work
(lag + pending) plus the entries it is about to add; when that reaches ``trim_warn_ratio`` of
``maxlen`` it logs a warning and counts it
(``scalper_bus_trim_risk_warnings_total``); ``scalper_bus_trim_risk_ratio`` always shows the ratio.
Size ``maxlen`` so that the slowest group's backlog stays well below it. Entries that were trimmed
while pending are counted by the consumer (``scalper_bus_trimmed_unprocessed_total``).

The stream registry (``scalper_shared.schema.streams``) guards every producer: a stream it does not
list (dead-letter streams included) is refused when the producer is built, and a message whose type
is not registered on the stream raises ``StreamError`` before anything is appended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis

from scalper_shared.bus import metrics
from scalper_shared.bus.groups import GroupBacklog, stream_backlogs, text
from scalper_shared.bus.lease import Fence
from scalper_shared.schema import CODEC, Codec, Envelope, streams
from scalper_shared.schema.codec import encoded_types

logger = logging.getLogger(__name__)

ENVELOPE_FIELD = "envelope"
PIPELINE_CHUNK = 500

# SET claim NX EX ttl, and only when that claimed it, XADD MAXLEN ~: one atomic "publish once".
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[4]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', ARGV[2], ARGV[5])
end
return false
"""

# XADD MAXLEN ~ of each ARGV[3..] in order; returns their ids. Blocks the server for the chunk
# (~1 ms per 500 entries), so chunks stay small.
_XADD_MANY = """
local ids = {}
for i = 3, #ARGV do
  ids[i - 2] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', ARGV[2], ARGV[i])
end
return ids
"""


# The same, only while KEYS[2] (a lease) holds ARGV[3]; false (nothing appended) otherwise.
_XADD_MANY_FENCED = """
if redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return false
end
local ids = {}
for i = 4, #ARGV do
  ids[i - 3] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', ARGV[2], ARGV[i])
end
return ids
"""


class FencedOut(RuntimeError):
    """A fenced publication found the lease held by another owner (or expired): nothing appended."""


class StreamProducer:
    """Publishes envelopes to ``prefix + stream``, a stream of the registry, of the types registered on it."""

    def __init__(
        self,
        redis_client: redis.Redis,
        stream: str,
        *,
        maxlen: int,
        prefix: str = "",
        codec: Codec = CODEC,
        trim_check_interval_s: float = 5.0,
        trim_warn_ratio: float = 0.8,
    ) -> None:
        if maxlen <= 0:
            raise ValueError(f"maxlen must be positive, got {maxlen}")
        self.stream = streams.spec(stream).name
        self.key = prefix + stream
        self.maxlen = maxlen
        self._redis = redis_client
        self._codec = codec
        self._check_interval_s = trim_check_interval_s
        self._warn_ratio = trim_warn_ratio
        self._next_check = 0.0
        self._xadd_many = redis_client.register_script(_XADD_MANY)
        self._xadd_many_fenced = redis_client.register_script(_XADD_MANY_FENCED)

    def publish(self, envelope: Envelope) -> str:
        """XADD one envelope; returns the entry id."""
        streams.check_message(self.stream, envelope.type)
        self._maybe_check_trim_risk(1)
        entry_id = self._redis.xadd(self.key, {ENVELOPE_FIELD: self._codec.encode(envelope)},
                                    maxlen=self.maxlen, approximate=True)
        metrics.PUBLISHED.labels(self.key).inc()
        return text(entry_id)

    def publish_once(self, envelope: Envelope, claim_key: str, ttl_s: int) -> str | None:
        """XADD ``envelope`` unless ``claim_key`` exists; claiming the key and appending are one atomic
        step (a Lua script), so a redelivered input publishes nothing twice. Returns the entry id, or
        None when the key was already claimed. ``claim_key`` is used as given (add the prefix)."""
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        streams.check_message(self.stream, envelope.type)
        self._maybe_check_trim_risk(1)
        entry_id = self._redis.eval(_PUBLISH_ONCE, 2, self.key, claim_key, self.maxlen, ENVELOPE_FIELD,
                                    envelope.id, ttl_s, self._codec.encode(envelope))
        if entry_id is None:
            return None
        metrics.PUBLISHED.labels(self.key).inc()
        return text(entry_id)

    def publish_many(self, envelopes: Iterable[Envelope], *, fence: Fence | None = None) -> list[str]:
        """XADD many envelopes, a chunk per round trip (each chunk atomic); returns the ids in order.

        With ``fence``, each chunk is appended only while the lease holds the fence's value, checked
        in the same script (``FencedOut`` otherwise: a stale owner publishes nothing more)."""
        envelopes = list(envelopes)
        for type_name in {envelope.type for envelope in envelopes}:
            streams.check_message(self.stream, type_name)
        return self._publish_checked([self._codec.encode(envelope) for envelope in envelopes], fence)

    def publish_encoded(self, encoded: list[bytes]) -> list[str]:
        """XADD envelopes already encoded by the codec (or byte-identical to it), like ``publish_many``."""
        for type_name in encoded_types(encoded):
            streams.check_message(self.stream, type_name or "<no type>")
        return self._publish_checked(encoded)

    def _publish_checked(self, encoded: list[bytes], fence: Fence | None = None) -> list[str]:
        self._maybe_check_trim_risk(len(encoded))
        ids: list[str] = []
        for start in range(0, len(encoded), PIPELINE_CHUNK):
            ids.extend(self._xadd_chunk(encoded[start:start + PIPELINE_CHUNK], fence))
        metrics.PUBLISHED.labels(self.key).inc(len(ids))
        return ids

    def _xadd_chunk(self, chunk: list[bytes], fence: Fence | None = None) -> list[str]:
        """XADD every entry of ``chunk`` in one server-side script call: one command and one reply
        for the whole chunk instead of one per entry (the per-reply client work dominated)."""
        if fence is None:
            entry_ids = self._xadd_many(keys=[self.key], args=[self.maxlen, ENVELOPE_FIELD, *chunk])
        else:
            entry_ids = self._xadd_many_fenced(keys=[self.key, fence.key],
                                               args=[self.maxlen, ENVELOPE_FIELD, fence.value, *chunk])
            if entry_ids is None:
                raise FencedOut(f"lease {fence.key} no longer holds {fence.value}: {self.key} not appended")
        return [text(entry_id) for entry_id in entry_ids]

    def check_trim_risk(self, incoming: int = 0) -> list[GroupBacklog]:
        """Export each group's unprocessed/maxlen ratio; warn for the groups whose backlog plus
        ``incoming`` new entries reaches ``trim_warn_ratio`` of maxlen. Returns those groups."""
        at_risk = []
        for backlog in stream_backlogs(self._redis, self.key):
            metrics.TRIM_RISK_RATIO.labels(self.key, backlog.group).set(backlog.unprocessed / self.maxlen)
            projected = backlog.unprocessed + incoming
            if projected >= self._warn_ratio * self.maxlen:
                at_risk.append(backlog)
                metrics.TRIM_RISK_WARNINGS.labels(self.key, backlog.group).inc()
                logger.warning(
                    "stream %s group %s has %s unprocessed entries (lag %s, pending %s) and %s more are "
                    "coming, %.0f%% of MAXLEN %s: trimming will drop unread work unless it catches up",
                    self.key, backlog.group, backlog.unprocessed, backlog.lag, backlog.pending, incoming,
                    100 * projected / self.maxlen, self.maxlen)
        return at_risk

    def _maybe_check_trim_risk(self, incoming: int) -> None:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self._check_interval_s
            self.check_trim_risk(incoming)
