"""Polygon REST backfill against a fake Polygon server on 127.0.0.1 (real HTTP, Polygon's JSON shape)."""

from __future__ import annotations

import math
import socket
import time
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from scalper_ingestion.sources.cache import AggsCache
from scalper_ingestion.sources.polygon_rest import (
    PolygonAuthError,
    PolygonRestSource,
    PolygonUnavailable,
    RestPolicy,
)
from scalper_shared.clock import FakeClock
from tests.fakes.polygon_rest import FakePolygonRest, minute_bars
from tests.fakes.sleeper import FakeSleeper

pytestmark = pytest.mark.integration

KEY = "test-key"
JULY_1, JULY_2, JULY_3 = date(2025, 7, 1), date(2025, 7, 2), date(2025, 7, 3)
AFTER_JULY = FakeClock(datetime(2025, 8, 1, tzinfo=UTC))


def _source(fake: FakePolygonRest, symbols: list[str], start: date, end: date, sleeper: FakeSleeper,
            policy: RestPolicy | None = None, **kwargs) -> PolygonRestSource:
    return PolygonRestSource(KEY, symbols, start, end, base_url=fake.url, policy=policy or RestPolicy(),
                             clock=kwargs.pop("clock", AFTER_JULY), monotonic=sleeper.monotonic,
                             sleep=sleeper.sleep, **kwargs)


def _all(source: PolygonRestSource) -> pd.DataFrame:
    return pd.concat(list(source.batches()), ignore_index=True)


def test_backfill_follows_next_url_across_three_pages():
    bars = minute_bars(JULY_1, 390)
    with FakePolygonRest({"SPY": bars}, page_size=150) as fake:
        frame = _all(_source(fake, ["SPY"], JULY_1, JULY_1, FakeSleeper()))
        requests = fake.aggs_requests()
    assert len(requests) == 3
    assert "cursor" not in requests[0].query and all("cursor" in r.query for r in requests[1:])
    assert all(r.authorization == f"Bearer {KEY}" for r in requests)
    assert requests[0].query["limit"] == ["50000"] and requests[0].query["adjusted"] == ["true"]
    assert len(frame) == 390 and frame["start"].is_monotonic_increasing
    assert frame["start"].iloc[0] == pd.Timestamp("2025-07-01 13:30", tz="UTC")
    assert set(frame["session"]) == {"regular"} and set(frame["source"]) == {"polygon_rest"}
    assert frame["volume"].tolist() == [b["v"] for b in bars]
    assert frame["trade_count"].tolist() == [b["n"] for b in bars]


def test_request_window_is_the_new_york_day_in_utc_milliseconds():
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 5)}) as fake:
        _all(_source(fake, ["SPY"], JULY_1, JULY_1, FakeSleeper()))
        path = fake.aggs_requests()[0].path
    frm, to = path.rsplit("/", 2)[-2:]
    assert int(frm) == int(datetime(2025, 7, 1, 4, tzinfo=UTC).timestamp() * 1000)  # 00:00 EDT
    assert int(to) == int(datetime(2025, 7, 2, 4, tzinfo=UTC).timestamp() * 1000) - 1


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_burst_of_failures_is_retried_with_exponential_backoff_then_succeeds(status):
    sleeper = FakeSleeper()
    policy = RestPolicy(requests_per_minute=100, backoff_factor_s=2.0)
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 10)}) as fake:
        fake.fail_next(status, times=3)
        frame = _all(_source(fake, ["SPY"], JULY_1, JULY_1, sleeper, policy))
        assert len(fake.aggs_requests()) == 4
    assert len(frame) == 10
    assert sleeper.sleeps == [4.0, 8.0]  # urllib3's backoff: none before the first retry, then 2 x 2**(n-1)


def test_retries_that_run_out_end_in_a_clear_error_naming_the_ticker_and_the_last_status():
    sleeper = FakeSleeper()
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 10)}) as fake:
        fake.fail_next(503, times=10)
        source = _source(fake, ["SPY"], JULY_1, JULY_1, sleeper, RestPolicy(requests_per_minute=100, max_attempts=3))
        with pytest.raises(PolygonUnavailable, match="Polygon SPY: gave up after 3 attempts, last HTTP 503"):
            _all(source)
        assert len(fake.aggs_requests()) == 3 == source.requests_sent


def test_retry_after_is_honoured_in_real_time_not_doubled():
    """Two 429s with ``Retry-After: 1``: the retries come after ~1 s each (the hand-written loop
    answered them after 2 s, then 4 s)."""
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 10)}) as fake:
        fake.fail_next(429, times=2, retry_after=1)
        source = PolygonRestSource(KEY, ["SPY"], JULY_1, JULY_1, base_url=fake.url, clock=AFTER_JULY,
                                   policy=RestPolicy(requests_per_minute=600, backoff_factor_s=8.0))
        started = time.monotonic()
        frame = _all(source)
        elapsed = time.monotonic() - started
        assert len(fake.aggs_requests()) == 3
    assert len(frame) == 10
    assert 2.0 <= elapsed < 3.5, f"two Retry-After: 1 took {elapsed:.2f}s"


def test_retry_after_header_lengthens_the_backoff():
    sleeper = FakeSleeper()
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 10)}) as fake:
        fake.fail_next(429, times=1, retry_after=30)
        _all(_source(fake, ["SPY"], JULY_1, JULY_1, sleeper, RestPolicy(requests_per_minute=100)))
    assert sleeper.sleeps == [30.0]


def test_a_failure_on_a_later_page_retries_only_that_page():
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 300)}, page_size=100) as fake:
        fake.fail_at[2] = 429  # the first request for page 2
        frame = _all(_source(fake, ["SPY"], JULY_1, JULY_1, FakeSleeper(), RestPolicy(requests_per_minute=100)))
        cursors = [r.query.get("cursor", [None])[0] for r in fake.aggs_requests()]
    assert len(frame) == 300 and frame["start"].is_unique
    assert len(cursors) == 4
    assert cursors[0] is None and cursors[1] == cursors[2] and cursors[3] not in (None, cursors[1])


def test_rate_limit_spaces_every_page_at_the_plan_rate():
    sleeper = FakeSleeper()
    policy = RestPolicy(requests_per_minute=5)  # free tier: 5 at once, then one every 12 s
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 80)}, page_size=10) as fake:
        source = _source(fake, ["SPY"], JULY_1, JULY_1, sleeper, policy)
        frame = _all(source)
        assert len(fake.aggs_requests()) == 8
    assert len(frame) == 80
    assert source.requests_sent == 8
    assert sleeper.sleeps == pytest.approx([12.0, 12.0, 12.0])
    assert source.limiter.waited_s == pytest.approx(36.0)


def test_index_ticker_without_volume_yields_nan_volume_and_vwap_never_zero():
    index_bars = minute_bars(JULY_1, 30, price=6200.0, index=True)
    zero_volume = [dict(bar, t=bar["t"] + 30 * 60_000, v=0, vw=0) for bar in index_bars]
    with FakePolygonRest({"I:SPX": index_bars + zero_volume}) as fake:
        frame = _all(_source(fake, ["I:SPX"], JULY_1, JULY_1, FakeSleeper()))
        assert "I:SPX" in fake.aggs_requests()[0].path
    assert len(frame) == 60 and set(frame["symbol"]) == {"I:SPX"}
    assert frame["volume"].isna().all() and frame["vwap"].isna().all()
    assert frame["trade_count"].isna().all()
    assert frame["close"].notna().all() and not math.isnan(frame["open"].iloc[0])


def test_403_is_a_clear_plan_not_entitled_error_naming_the_ticker_without_retries():
    sleeper = FakeSleeper()
    with FakePolygonRest({"I:SPX": minute_bars(JULY_1, 5, index=True)}) as fake:
        fake.forbidden.add("I:SPX")
        source = _source(fake, ["I:SPX"], JULY_1, JULY_1, sleeper)
        with pytest.raises(PolygonAuthError, match=r"I:SPX.*403.*plan not entitled") as info:
            _all(source)
        assert len(fake.aggs_requests()) == 1
    assert info.value.status == 403 and info.value.ticker == "I:SPX" and sleeper.sleeps == []


def test_401_is_a_clear_bad_key_error_naming_the_ticker():
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 5)}, api_key="the-real-key") as fake:
        with pytest.raises(PolygonAuthError, match=r"SPY.*401.*bad key"):
            _all(_source(fake, ["SPY"], JULY_1, JULY_1, FakeSleeper()))
        assert len(fake.aggs_requests()) == 1


def test_read_timeout_is_applied_and_a_stalled_server_ends_in_a_clear_error():
    sleeper = FakeSleeper()
    policy = RestPolicy(read_timeout_s=0.2, max_attempts=2, backoff_factor_s=1.0)
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 5)}) as fake:
        fake.stall_s = 1.5  # answers correctly, but far too late
        with pytest.raises(PolygonUnavailable, match=r"SPY: gave up after 2 attempts.*timed out"):
            _all(_source(fake, ["SPY"], JULY_1, JULY_1, sleeper, policy))
        assert len(fake.aggs_requests()) == 2
    assert sleeper.sleeps == []  # urllib3 retries a first failure at once


def test_refused_connection_is_retried_then_reported():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before use: nothing listens there
    sleeper = FakeSleeper()
    source = PolygonRestSource(KEY, ["SPY"], JULY_1, JULY_1, base_url=f"http://127.0.0.1:{port}",
                               policy=RestPolicy(max_attempts=3), clock=AFTER_JULY,
                               monotonic=sleeper.monotonic, sleep=sleeper.sleep)
    with pytest.raises(PolygonUnavailable, match="gave up after 3 attempts, last transport failure"):
        _all(source)
    assert source.requests_sent == 3 and sleeper.sleeps == [4.0]


def test_second_backfill_is_served_from_the_cache_and_refresh_pulls_again(tmp_path):
    cache = AggsCache(tmp_path / "cache")
    data = {"SPY": minute_bars(JULY_1, 50) + minute_bars(JULY_2, 40) + minute_bars(JULY_3, 30),
            "I:SPX": minute_bars(JULY_2, 20, index=True)}
    with FakePolygonRest(data) as fake:
        first = _all(_source(fake, ["SPY", "I:SPX"], JULY_1, JULY_3, FakeSleeper(), cache=cache))
        pulled = len(fake.aggs_requests())
        second = _all(_source(fake, ["SPY", "I:SPX"], JULY_1, JULY_3, FakeSleeper(), cache=cache))
        after_cached_run = len(fake.aggs_requests())
        refreshed = _all(_source(fake, ["SPY", "I:SPX"], JULY_1, JULY_3, FakeSleeper(), cache=cache,
                                 refresh=True))
        after_refresh = len(fake.aggs_requests())
    assert pulled == 2  # one range request per symbol
    # the second time only I:SPX's July 1 and July 3 (no bars there, so never cached) are asked again
    assert after_cached_run == pulled + 2
    assert after_refresh == after_cached_run + 2
    assert len(first) == 140
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first, refreshed)
    assert second["volume"][second["symbol"] == "I:SPX"].isna().all()
    assert cache.path("I:SPX", JULY_2).exists() and cache.path("SPY", JULY_3).exists()
    assert not cache.path("I:SPX", JULY_1).exists()  # a trading day without bars is not cached as complete


def test_trading_days_without_bars_are_listed_and_an_empty_cached_day_is_asked_for_again(tmp_path):
    cache = AggsCache(tmp_path / "cache")
    cache.store("SPY", JULY_2, pd.DataFrame())  # what earlier versions cached for a day with no bars
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 5)}) as fake:
        source = _source(fake, ["SPY"], JULY_1, JULY_3, FakeSleeper(), cache=cache)
        frame = _all(source)
        assert len(fake.aggs_requests()) == 1  # the empty cached July 2 counts as not cached
    assert len(frame) == 5
    assert source.empty_days == [("SPY", JULY_2), ("SPY", JULY_3)]


def test_today_is_never_cached(tmp_path):
    cache = AggsCache(tmp_path)
    during_july_2 = FakeClock(datetime(2025, 7, 2, 18, 0, tzinfo=UTC))
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 10) + minute_bars(JULY_2, 10)}) as fake:
        _all(_source(fake, ["SPY"], JULY_1, JULY_2, FakeSleeper(), cache=cache, clock=during_july_2))
        _all(_source(fake, ["SPY"], JULY_1, JULY_2, FakeSleeper(), cache=cache, clock=during_july_2))
        paths = [r.path for r in fake.aggs_requests()]
    assert cache.path("SPY", JULY_1).exists() and not cache.path("SPY", JULY_2).exists()
    assert len(paths) == 2 and paths[1].rsplit("/", 2)[-2] == str(int(datetime(2025, 7, 2, 4, tzinfo=UTC)
                                                                       .timestamp() * 1000))


def test_bars_on_a_closed_day_inside_the_range_are_passed_on_for_quarantine():
    saturday = minute_bars(date(2025, 7, 5), 3, first_et="10:00", index=True)
    data = {"I:SPX": minute_bars(JULY_3, 5, index=True) + saturday + minute_bars(date(2025, 7, 7), 5, index=True)}
    with FakePolygonRest(data) as fake:
        batches = list(_source(fake, ["I:SPX"], JULY_3, date(2025, 7, 7), FakeSleeper()).batches())
        assert len(fake.aggs_requests()) == 1
    assert [len(b) for b in batches] == [5, 5, 3]
    assert batches[-1]["session"].isna().all()
