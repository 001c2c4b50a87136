"""Read a consumer group's backlog (lag and pending) from Redis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

LAG_COUNT_CAP = 100_000
"""When Redis cannot report ``lag``, count undelivered entries up to this many."""


@dataclass(frozen=True, slots=True)
class GroupBacklog:
    group: str
    lag: int
    """Entries of the stream not yet delivered to the group."""
    pending: int
    """Entries delivered to a consumer of the group and not yet acknowledged."""
    last_delivered_id: str

    @property
    def unprocessed(self) -> int:
        return self.lag + self.pending


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_backlogs(client: redis.Redis, key: str) -> list[GroupBacklog]:
    """The backlog of every group of ``key``; empty when the stream does not exist."""
    try:
        infos = client.xinfo_groups(key)
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return []
        raise
    return [_backlog(client, key, info) for info in infos]


def group_backlog(client: redis.Redis, key: str, group: str) -> GroupBacklog | None:
    for backlog in stream_backlogs(client, key):
        if backlog.group == group:
            return backlog
    return None


def _backlog(client: redis.Redis, key: str, info: dict[str, Any]) -> GroupBacklog:
    last_id = text(info["last-delivered-id"])
    lag = info.get("lag")
    if lag is None:  # Redis < 7, or the counter is unknown after deletions: count after last-delivered
        lag = _entries_after(client, key, last_id, LAG_COUNT_CAP)
    elif int(lag) > 0 and not _entries_after(client, key, last_id, 1):
        lag = 0  # Redis 7.0 keeps counting entries deleted (XDEL) after the group's position
    return GroupBacklog(group=text(info["name"]), lag=int(lag), pending=int(info["pending"]),
                        last_delivered_id=last_id)


def _entries_after(client: redis.Redis, key: str, last_id: str, cap: int) -> int:
    return len(client.xrange(key, min=f"({last_id}", max="+", count=cap) or [])
