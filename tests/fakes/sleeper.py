"""A fake monotonic clock whose ``sleep`` advances time instantly and records each wait."""

from __future__ import annotations


class FakeSleeper:
    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
