"""The feature service's lease and fence on real Redis and PostgreSQL: a stale owner (its lease expired
while it was paused, and a standby took over) can neither publish nor write."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from sqlalchemy import Engine

from scalper_features import repository
from scalper_shared.bus import StreamProducer
from scalper_shared.bus.lease import Lease
from scalper_shared.bus.producer import FencedOut
from scalper_shared.clock import SequentialIds, SystemClock
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.db import make_engine
from scalper_shared.schema import make_envelope, streams
from scalper_shared.schema.messages import FeatureVector

pytestmark = pytest.mark.integration


@pytest.fixture
def db(migrated_database_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


def vector() -> FeatureVector:
    return FeatureVector(symbol="SPY", minute=datetime(2025, 8, 12, 14, 0, tzinfo=UTC),
                         spec_hash=FEATURE_SPEC.spec_hash, values=(0.0,) * FEATURE_SPEC.n_market)


def test_a_paused_owner_whose_lease_expired_can_neither_publish_nor_write_after_a_takeover(
        redis_client: redis.Redis, stream_prefix: str, db: Engine) -> None:
    key = stream_prefix + "features:lease:features"
    owner, standby = Lease(redis_client, key, "a", ttl_ms=300), Lease(redis_client, key, "b", ttl_ms=300)
    first = owner.hold()
    assert first is not None and standby.hold() is None  # one owner at a time
    assert owner.hold() == first  # a renewal keeps the token
    with db.begin() as connection:
        repository.claim_fence(connection, "features", first.token, "a")

    time.sleep(0.4)  # the owner pauses past its TTL; the standby takes over with a larger token
    second = standby.hold()
    assert second is not None and second.token > first.token
    with db.begin() as connection:
        repository.claim_fence(connection, "features", second.token, "b")

    producer = StreamProducer(redis_client, streams.FEATURES_VECTORS, maxlen=1000, prefix=stream_prefix)
    envelope = make_envelope(vector(), source="test", clock=SystemClock(), ids=SequentialIds("fv"))
    with pytest.raises(FencedOut):
        producer.publish_many([envelope], fence=first)
    assert redis_client.xlen(stream_prefix + streams.FEATURES_VECTORS) == 0
    with pytest.raises(repository.FenceLost), db.begin() as connection:
        repository.check_fence(connection, "features", first.token)
    with pytest.raises(repository.FenceLost), db.begin() as connection:
        repository.claim_fence(connection, "features", first.token, "a")
    assert owner.hold() is None  # the paused owner learns it lost the lease

    assert len(producer.publish_many([envelope], fence=second)) == 1
    with db.begin() as connection:
        repository.check_fence(connection, "features", second.token)
    standby.release()
    assert redis_client.get(key) is None


def test_an_owner_recovers_its_lease_after_redis_lost_the_token_counter(
        redis_client: redis.Redis, stream_prefix: str, db: Engine) -> None:
    from scalper_features.main import Ownership
    from scalper_features.pipeline import FeaturePipeline

    with db.begin() as connection:  # an earlier owner (before a Redis restart without persistence) had token 7
        repository.claim_fence(connection, "features", 7, "old")
    producer = StreamProducer(redis_client, streams.FEATURES_VECTORS, maxlen=1000, prefix=stream_prefix)
    pipeline = FeaturePipeline(("SPY", "QQQ"), db, producer, SystemClock(), wait_s=1.0, universe="features")
    ownership = Ownership(Lease(redis_client, stream_prefix + "features:lease:features", "new", 5000), pipeline)
    with pytest.raises(repository.FenceLost):
        ownership.keep()  # token 1 from the fresh counter: refused by the fence
    assert not ownership.owned
    ownership.lease.release()
    ownership.keep()
    assert ownership.owned and ownership.lease.fence is not None and ownership.lease.fence.token == 8
