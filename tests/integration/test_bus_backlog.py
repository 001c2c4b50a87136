"""A group's backlog stays right when entries after its position were deleted (XDEL)."""

from __future__ import annotations

import redis

from scalper_shared.bus.groups import group_backlog


def test_deleted_entries_after_the_group_position_are_not_backlog(redis_client: redis.Redis,
                                                                   stream_prefix: str) -> None:
    key = stream_prefix + "md.bars"
    redis_client.xgroup_create(key, "g", id="0", mkstream=True)
    ids = [redis_client.xadd(key, {"n": i}) for i in range(5)]
    redis_client.xreadgroup("g", "c", {key: ">"}, count=1)
    redis_client.xack(key, "g", ids[0])
    assert group_backlog(redis_client, key, "g").unprocessed == 4  # type: ignore[union-attr]
    redis_client.xdel(key, *ids[1:])
    assert group_backlog(redis_client, key, "g").unprocessed == 0  # type: ignore[union-attr]
    redis_client.xadd(key, {"n": 9})
    assert group_backlog(redis_client, key, "g").lag >= 1  # type: ignore[union-attr]
