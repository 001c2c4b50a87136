"""A Redis lease with a fencing token: one owner of a piece of work at a time, standbys take over.

``Lease.hold()`` acquires the lease when it is free (``SET NX PX`` in a script that also ``INCR``s
the fencing counter, so every acquisition gets a larger token) or renews it when this owner holds
it; it returns the held :class:`Fence` or None. Call it every ``ttl_ms / 3``: an owner that stops
renewing (crash, pause, partition) loses the lease after ``ttl_ms`` and a standby's next ``hold``
takes it (``raise_token_floor`` keeps tokens growing when Redis lost its counter). The fence's ``value`` (``<owner>:<token>``) is what a producer checks atomically with its
``XADD`` (``StreamProducer.publish_many(..., fence=)``), so a stale owner can never publish; writers
of a database store the token and refuse to write under an older one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

logger = logging.getLogger(__name__)

# KEYS: lease, token counter. ARGV: owner, ttl ms, current value (or '').
# Renew when the lease holds the current value; else acquire when free; else nothing.
_HOLD = """
local current = redis.call('GET', KEYS[1])
if current and current == ARGV[3] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return current
end
if current then
  return false
end
local token = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. ':' .. token
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""

# KEYS: token counter. ARGV: floor. The counter never goes below the floor.
_FLOOR = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease key and the value it holds while this owner owns it; ``token`` orders owners."""

    key: str
    value: str

    @property
    def token(self) -> int:
        return int(self.value.rsplit(":", 1)[1])


class Lease:
    """Ownership of ``key`` by ``owner`` (a unique replica id) for ``ttl_ms`` per renewal."""

    def __init__(self, client: redis.Redis, key: str, owner: str, ttl_ms: int) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"ttl_ms must be positive, got {ttl_ms}")
        if ":" in owner:
            owner = owner.replace(":", "_")
        self.key = key
        self.owner = owner
        self.ttl_ms = ttl_ms
        self._client = client
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)
        self._floor = client.register_script(_FLOOR)
        self.fence: Fence | None = None

    def hold(self) -> Fence | None:
        """Acquire or renew; the fence held now (a new token after a loss), or None."""
        current = self.fence.value if self.fence is not None else ""
        value = self._hold(keys=[self.key, self.key + ":token"], args=[self.owner, self.ttl_ms, current])
        previous = self.fence
        self.fence = None if value is None else Fence(self.key, value.decode() if isinstance(value, bytes) else value)
        if self.fence != previous:
            if self.fence is not None:
                logger.info("%s holds lease %s (token %s)", self.owner, self.key, self.fence.token)
            elif previous is not None:
                logger.warning("%s lost lease %s (token %s)", self.owner, self.key, previous.token)
        return self.fence

    def raise_token_floor(self, token: int) -> None:
        """Make the next acquisition's token larger than ``token`` (a fence stored elsewhere holds it:
        the counter was lost with a Redis restart without persistence)."""
        self._floor(keys=[self.key + ":token"], args=[token])

    def release(self) -> None:
        """Give the lease up now (clean shutdown) so a standby takes over without waiting for the TTL."""
        if self.fence is not None:
            self._release(keys=[self.key], args=[self.fence.value])
            logger.info("%s released lease %s", self.owner, self.key)
            self.fence = None
