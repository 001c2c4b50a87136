"""Injected clock and id factory: domain logic never calls ``datetime.now()`` or ``uuid4()`` itself."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when


class ReplayClock:
    """Replay time: the replay driver moves it to each replayed minute's close (:meth:`advance_to`);
    between two moves it runs on with the wall clock, so a decision taken 40 ms after its bar went out
    is 40 ms old, and a bar-to-order latency measured on it is the wall time taken. Never goes back.
    Thread-safe; :meth:`seconds` is its monotonic reading (for waits measured in replay time)."""

    def __init__(self, start: datetime, monotonic: Callable[[], float] = time.monotonic) -> None:
        if start.tzinfo is None:
            raise ValueError("ReplayClock needs a timezone-aware start")
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._anchor, self._wall = start, monotonic()

    def now(self) -> datetime:
        with self._lock:
            return self._anchor + timedelta(seconds=self._monotonic() - self._wall)

    def seconds(self) -> float:
        return self.now().timestamp()

    def advance_to(self, when: datetime) -> None:
        """Jump to ``when`` (ignored when the clock is already later)."""
        with self._lock:
            if when > self._anchor + timedelta(seconds=self._monotonic() - self._wall):
                self._anchor, self._wall = when, self._monotonic()


class IdFactory(Protocol):
    def __call__(self) -> str: ...


def uuid_ids() -> str:
    return str(uuid.uuid4())


class SequentialIds:
    """Deterministic ids for tests and replays: ``prefix-1``, ``prefix-2``, ..."""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"
