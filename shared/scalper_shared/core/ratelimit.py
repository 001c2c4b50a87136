"""Rate limits written as ``"100/1s"`` (count per window), enforced exactly by a sliding window.

Pure: callers pass the current monotonic time in seconds, so tests and replays control it.
Used for API keys (policy and execution APIs) and for the order rate limit of the risk engine.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*(ms|s|min|m|h)\s*$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    count: int
    window_s: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``"100/1s"``, ``"5/1m"``, ``"20/500ms"``, ``"10/s"`` -> RateLimit."""
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(f"rate limit {text!r} is not COUNT/WINDOW such as '100/1s' or '5/1m'")
        count, amount, unit = int(match[1]), float(match[2] or 1), match[3]
        if count <= 0 or amount <= 0:
            raise ValueError(f"rate limit {text!r} needs a positive count and window")
        return cls(count, amount * _UNITS[unit])

    def __str__(self) -> str:
        return f"{self.count}/{self.window_s:g}s"


class SlidingWindow:
    """At most ``limit.count`` events in any window of ``limit.window_s`` seconds."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._events: deque[float] = deque()

    def try_acquire(self, now: float) -> bool:
        """Record an event at ``now`` if the limit allows it; False (nothing recorded) otherwise."""
        horizon = now - self.limit.window_s
        while self._events and self._events[0] <= horizon:
            self._events.popleft()
        if len(self._events) >= self.limit.count:
            return False
        self._events.append(now)
        return True

    def retry_after(self, now: float) -> float:
        """Seconds until the next event would be allowed (0 when it would be now)."""
        if len(self._events) < self.limit.count:
            return 0.0
        return max(0.0, self._events[0] + self.limit.window_s - now)
