"""Polygon REST backfill of 1-minute aggregates, through ``polygon-api-client``.

Every HTTP request, each pagination page and each retry included, goes through
:class:`ThrottledPoolManager`, which replaces the client's urllib3 pool: it takes a token from a
:class:`TokenBucket` (the plan's requests per minute) and applies the connect/read timeouts (the client
builds a ``urllib3.Timeout`` but never passes it on). Retries are urllib3's own :class:`Retry`
(:class:`PolygonRetry`): 429 and 5xx answers, connect and read failures, ``Retry-After`` honoured
(``respect_retry_after_header``: a ``Retry-After: 1`` is retried after 1 s), else exponential backoff;
each retry takes a rate-limit token too. 401/403 fail at once with :class:`PolygonAuthError`.
Retrying below the paginator means a failing page is retried alone, never the pages before it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlparse

import certifi
import pandas as pd
import urllib3
from polygon import RESTClient
from polygon.rest import BASE as POLYGON_BASE
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from scalper_ingestion.sources.base import from_polygon_aggs
from scalper_ingestion.sources.cache import AggsCache, conform_raw, day_end, empty_raw, is_complete_day
from scalper_shared.clock import Clock, SystemClock
from scalper_shared.core.calendar import NEW_YORK, TradingDay, trading_days

logger = logging.getLogger(__name__)

SOURCE_NAME = "polygon_rest"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_TICKER_IN_PATH = re.compile(r"/ticker/([^/]+)/")


class PolygonError(RuntimeError):
    """A Polygon request that did not succeed."""


class PolygonAuthError(PolygonError):
    """401 (bad key) or 403 (plan not entitled): retrying cannot help. The message is one line that
    says what to do."""

    def __init__(self, status: int, ticker: str, body: str) -> None:
        if status == 401:
            why = "bad key: check POLYGON_API_KEY (in .env or the environment) against your Polygon dashboard"
        else:
            why = (f"plan not entitled: your Polygon plan does not cover {ticker} or this date range; "
                   f"drop {ticker} from --symbols, shorten the range, or upgrade the plan")
        detail = " ".join(body.split())[:160]
        super().__init__(f"Polygon refused {ticker} with HTTP {status}: {why}" + (f" (Polygon said: {detail})"
                                                                                  if detail else ""))
        self.status = status
        self.ticker = ticker


class PolygonUnavailable(PolygonError):
    """Retries were spent on 429/5xx answers or transport failures (timeouts, refused connections)."""

    HINT = ("try again later; lower POLYGON_REQUESTS_PER_MINUTE if Polygon keeps answering 429, "
            "check POLYGON_REST_URL and the network if it cannot be reached")

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}; {self.HINT}")


@dataclass(frozen=True, slots=True)
class RestPolicy:
    """Rate limit, retries and timeouts. Defaults fit the free tier (5 requests/minute)."""

    requests_per_minute: float = 5.0
    burst: int | None = None  # tokens available at once; default: one minute's worth
    max_attempts: int = 6
    backoff_factor_s: float = 2.0
    """urllib3's ``backoff_factor``: no wait before the first retry, then ``factor * 2**(n-1)`` seconds
    after the n-th consecutive failure (4, 8, 16 ... for 2.0); a ``Retry-After`` header replaces it."""
    backoff_max_s: float = 120.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    max_days_per_request: int = 30  # ~1,000 bars a day; a page holds up to 50,000


class TokenBucket:
    """A token bucket: ``capacity`` requests at once, refilled at ``per_minute`` tokens a minute.

    ``monotonic`` and ``sleep`` are injectable so tests run on a fake clock.
    """

    def __init__(self, per_minute: float, capacity: int | None = None, *,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be positive, got {per_minute}")
        self.rate_per_s = per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else max(1, int(per_minute)))
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = self.capacity
        self._updated = monotonic()
        self.waited_s = 0.0

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds slept."""
        waited = 0.0
        self._refill()
        while self._tokens < 1.0:
            delay = (1.0 - self._tokens) / self.rate_per_s
            self._sleep(delay)
            waited += delay
            self._refill()
        self._tokens -= 1.0
        self.waited_s += waited
        return waited


def _ticker_of(url: str) -> str:
    match = _TICKER_IN_PATH.search(urlparse(url).path)
    return unquote(match.group(1)) if match else urlparse(url).path


class PolygonRetry(Retry):
    """urllib3's :class:`Retry` whose waits go through an injectable ``sleeper`` (tests run on a fake
    clock) and whose every retry first takes a token from the rate limiter.

    The wait is urllib3's: the ``Retry-After`` of the answer when it has one, else
    :meth:`Retry.get_backoff_time`. urllib3 builds a new object per retry (:meth:`new`); the limiter,
    the sleeper and the callback travel with it.
    """

    def __init__(self, *args: Any, limiter: TokenBucket | None = None,
                 sleeper: Callable[[float], None] = time.sleep, on_retry: Callable[[], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limiter, self.sleeper, self.on_retry = limiter, sleeper, on_retry

    def new(self, **kw: Any) -> PolygonRetry:
        retry = super().new(**kw)
        retry.limiter, retry.sleeper, retry.on_retry = self.limiter, self.sleeper, self.on_retry
        return retry

    def sleep(self, response: urllib3.BaseHTTPResponse | None = None) -> None:
        delay = self.get_retry_after(response) if self.respect_retry_after_header and response is not None else None
        if delay is None:
            delay = self.get_backoff_time()
        last = self.history[-1] if self.history else None
        failure = f"HTTP {last.status}" if last is not None and last.status else f"{last.error if last else '?'}"
        logger.warning("Polygon %s failed (%s); retry %d/%d in %.1fs", _ticker_of(last.url or "" if last else ""),
                       failure, len(self.history), (self.total or 0) + len(self.history), delay)
        if delay > 0:
            self.sleeper(delay)
        if self.limiter is not None:
            self.limiter.acquire()
        if self.on_retry is not None:
            self.on_retry()


def retry_policy(policy: RestPolicy, limiter: TokenBucket | None = None,
                 sleeper: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[], None] | None = None) -> PolygonRetry:
    """``max_attempts`` attempts in all: 429/5xx answers and connect/read failures are retried."""
    return PolygonRetry(total=policy.max_attempts - 1, redirect=0, status_forcelist=RETRYABLE_STATUSES,
                        allowed_methods=frozenset({"GET"}), backoff_factor=policy.backoff_factor_s,
                        backoff_max=policy.backoff_max_s, respect_retry_after_header=True, raise_on_status=False,
                        limiter=limiter, sleeper=sleeper, on_retry=on_retry)


class ThrottledPoolManager(urllib3.PoolManager):
    """The client's HTTP pool with a rate limit, real timeouts and urllib3 retries on every request."""

    def __init__(self, limiter: TokenBucket, policy: RestPolicy, sleep: Callable[[float], None],
                 **pool_kw: Any) -> None:
        super().__init__(
            timeout=urllib3.Timeout(connect=policy.connect_timeout_s, read=policy.read_timeout_s),
            retries=retry_policy(policy, limiter, sleep, self._count_request),
            **pool_kw,
        )
        self.limiter = limiter
        self.policy = policy
        self.requests_sent = 0

    def _count_request(self) -> None:
        self.requests_sent += 1

    def urlopen(  # type: ignore[override]  # same signature as urllib3.PoolManager.urlopen
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        ticker = _ticker_of(url)
        self.limiter.acquire()
        self._count_request()
        first = self.requests_sent
        try:
            response = super().urlopen(method, url, redirect=redirect, **kw)
        except MaxRetryError as exc:
            attempts = self.requests_sent - first + 1
            raise PolygonUnavailable(f"Polygon {ticker}: gave up after {attempts} attempts, "
                                     f"last transport failure: {exc.reason}") from None
        if response.status in (401, 403):
            raise PolygonAuthError(response.status, ticker, response.data.decode("utf-8", "replace"))
        if response.status in RETRYABLE_STATUSES:
            attempts = self.requests_sent - first + 1
            raise PolygonUnavailable(f"Polygon {ticker}: gave up after {attempts} attempts, last HTTP {response.status}")
        return response


def build_client(api_key: str, policy: RestPolicy, limiter: TokenBucket, *,
                 base_url: str = POLYGON_BASE, sleep: Callable[[float], None] = time.sleep) -> RESTClient:
    """A ``RESTClient`` whose every request is rate-limited, timed out and retried by us."""
    if not api_key:
        raise PolygonError("no Polygon API key given (set POLYGON_API_KEY)")
    client = RESTClient(api_key=api_key, connect_timeout=policy.connect_timeout_s,
                        read_timeout=policy.read_timeout_s, retries=0, base=base_url.rstrip("/"))
    client.client = ThrottledPoolManager(limiter, policy, sleep, num_pools=4, headers=client.headers,
                                         ca_certs=certifi.where(), cert_reqs="CERT_REQUIRED")
    return client


def _aggs_frame(aggs: Sequence[Any]) -> pd.DataFrame:
    """The client's ``Agg`` objects back to Polygon's raw fields ``t,o,h,l,c,v,vw,n``."""
    rows = [{"t": a.timestamp, "o": a.open, "h": a.high, "l": a.low, "c": a.close,
             "v": a.volume, "vw": a.vwap, "n": a.transactions} for a in aggs]
    return conform_raw(pd.DataFrame(rows)) if rows else empty_raw()


def _runs(days: list[TradingDay], max_len: int) -> Iterator[list[TradingDay]]:
    """Consecutive chunks of at most ``max_len`` days."""
    for offset in range(0, len(days), max_len):
        yield days[offset:offset + max_len]


class PolygonRestSource:
    """Minute bars of ``symbols`` for the trading days ``start``..``end`` (New York dates, inclusive).

    Yields one batch per symbol-day, in order. Days found in ``cache`` cost no request unless
    ``refresh``; uncached days are fetched in ranges of up to ``max_days_per_request`` days and
    split per day; complete past days are written back to the cache.
    """

    def __init__(self, api_key: str, symbols: Sequence[str], start: date, end: date, *,
                 cache: AggsCache | None = None, refresh: bool = False, policy: RestPolicy | None = None,
                 base_url: str = POLYGON_BASE, clock: Clock | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.symbols = list(symbols)
        self.start, self.end = start, end
        self.cache, self.refresh = cache, refresh
        self.policy = policy or RestPolicy()
        self.clock = clock or SystemClock()
        self.limiter = TokenBucket(self.policy.requests_per_minute, self.policy.burst,
                                   monotonic=monotonic, sleep=sleep)
        self.client = build_client(api_key, self.policy, self.limiter, base_url=base_url, sleep=sleep)
        self.empty_days: list[tuple[str, date]] = []
        """(symbol, trading day) fetched without a single bar, in order (warned about, not cached)."""

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far (pages and retries included)."""
        pool: ThrottledPoolManager = self.client.client
        return pool.requests_sent

    def batches(self) -> Iterator[pd.DataFrame]:
        days = trading_days(self.start, self.end)
        for symbol in self.symbols:
            for _day, raw in self._raw_days(symbol, days):
                yield from_polygon_aggs(raw, symbol, SOURCE_NAME)

    def fetch_raw(self, symbol: str, first: date, last: date) -> pd.DataFrame:
        """Raw aggregates of ``symbol`` from ``first`` 00:00 to ``last`` 24:00 New York time (all pages)."""
        from_ = datetime.combine(first, datetime.min.time(), tzinfo=NEW_YORK)
        to = day_end(last) - timedelta(milliseconds=1)
        logger.info("fetching %s minute aggregates %s..%s", symbol, first, last)
        aggs = list(self.client.list_aggs(symbol, 1, "minute", from_, to, adjusted=True, sort="asc",
                                          limit=50000))
        return _aggs_frame(aggs)

    def raw_day(self, symbol: str, trading_day: TradingDay) -> pd.DataFrame:
        """Raw aggregates of ``symbol`` (any Polygon ticker, ``O:`` options included) on one trading day,
        from the cache when it has them, else fetched (and cached once the day is complete)."""
        frames = [raw for day, raw in self._raw_days(symbol, [trading_day]) if day == trading_day.day]
        return frames[0] if frames else empty_raw()

    def _raw_days(self, symbol: str, days: list[TradingDay]) -> Iterator[tuple[date | None, pd.DataFrame]]:
        pending: list[TradingDay] = []
        for trading_day in days:
            cached = None if (self.refresh or self.cache is None) else self.cache.load(symbol, trading_day.day)
            if cached is None:
                pending.append(trading_day)
                continue
            yield from self._fetch_days(symbol, pending)
            pending = []
            logger.debug("%s %s from cache", symbol, trading_day.day)
            yield trading_day.day, cached
        yield from self._fetch_days(symbol, pending)

    def _fetch_days(self, symbol: str, days: list[TradingDay]) -> Iterator[tuple[date | None, pd.DataFrame]]:
        """(day, raw bars) per trading day of ``days``, then (None, bars on closed days) if any."""
        for run in _runs(days, self.policy.max_days_per_request):
            raw = self.fetch_raw(symbol, run[0].day, run[-1].day)
            local_days = pd.to_datetime(raw["t"], unit="ms", utc=True).dt.tz_convert(NEW_YORK).dt.date
            now = self.clock.now()
            for trading_day in run:
                raw_day = raw[(local_days == trading_day.day).to_numpy()].reset_index(drop=True)
                if raw_day.empty:
                    # a trading day without a bar: a gap at Polygon or outside the plan's history.
                    # Never cached as complete, so a later backfill asks again.
                    self.empty_days.append((symbol, trading_day.day))
                    logger.info("Polygon returned no %s bars for trading day %s; not cached", symbol,
                                trading_day.day)  # the backfill warns once for all such days
                elif self.cache is not None and is_complete_day(trading_day.day, now):
                    self.cache.store(symbol, trading_day.day, raw_day)
                yield trading_day.day, raw_day
            stray = raw[~local_days.isin([d.day for d in run]).to_numpy()].reset_index(drop=True)
            if len(stray):  # bars on closed days inside the range: passed on, so validation quarantines them
                logger.warning("%s: %s bars on closed days between %s and %s", symbol, len(stray),
                               run[0].day, run[-1].day)
                yield None, stray
