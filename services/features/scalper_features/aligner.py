"""Aligns the bars of several symbols into minutes before the features of a minute are computed.

Cross-symbol features (relative strength, peer return) of minute ``m`` must see every symbol's bar
of ``m``, as the batch builder does. A minute is released, in minute order, when

1. every configured symbol has its bar of ``m``, or
2. every configured symbol has shown a bar of ``m`` or later (a symbol that skipped ``m`` had no
   trades then: the batch rule forward-fills it, so waiting longer cannot change anything), or
3. ``wait_s`` seconds passed since the first bar of ``m`` arrived (a symbol is late or silent);
   the minute is computed with what is there, and a late bar of that symbol is still processed on
   its own when it comes (its own features are right; the others' context used the forward fill).

Rules 1 and 2 give exactly the batch numbers; rule 3 is the documented live compromise. A bar at or
before the last released minute is "late": ``add`` returns it for immediate processing (the pipeline
recomputes that session; a redelivery changes nothing). ``seen_through`` tells, per symbol, up to
which minute its bars are final: the pipeline marks the context features of a minute released by
rule 3 whose reference or peer has not shown a bar of that minute yet.
Bars outside regular hours and of other symbols are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scalper_shared.core.features import BarInput
from scalper_shared.core.features.sessions import session_of


@dataclass(frozen=True, slots=True)
class ReleasedMinute:
    """The bars of one minute (symbol -> bar) and when its first bar arrived (monotonic seconds)."""

    minute: int
    bars: dict[str, BarInput]
    first_seen: float
    timed_out: bool = False


class MinuteAligner:
    """Buffers bars per minute and releases complete minutes in order (pure; clock injected)."""

    def __init__(self, symbols: Iterable[str], wait_s: float, clock: Callable[[], float]) -> None:
        self.symbols = frozenset(symbols)
        self.wait_s = wait_s
        self._clock = clock
        self._pending: dict[int, dict[str, BarInput]] = {}
        self._first_seen: dict[int, float] = {}
        self._seen_through: dict[str, int] = {}
        self.released_through: int | None = None

    @property
    def pending_minutes(self) -> int:
        return len(self._pending)

    def restore(self, released_through: int | None, seen_through: dict[str, int]) -> None:
        """State after a restart: the last processed minute and each symbol's newest processed bar."""
        self._pending.clear()
        self._first_seen.clear()
        self.released_through = released_through
        self._seen_through = dict(seen_through)

    def add(self, symbol: str, bar: BarInput) -> ReleasedMinute | None:
        """Buffer ``bar``; a late bar comes back at once as a one-symbol minute to process now."""
        if symbol not in self.symbols or session_of(bar.t) is None:
            return None
        if bar.t > self._seen_through.get(symbol, -1):
            self._seen_through[symbol] = bar.t
        if self.released_through is not None and bar.t <= self.released_through:
            return ReleasedMinute(bar.t, {symbol: bar}, self._clock())
        minute = self._pending.get(bar.t)
        if minute is None:
            minute = self._pending[bar.t] = {}
            self._first_seen[bar.t] = self._clock()
        minute[symbol] = bar  # a re-sent or corrected bar of a pending minute replaces the older one
        return None

    def seen_through(self, symbol: str) -> int | None:
        """Start of ``symbol``'s newest bar seen (any session), None before its first."""
        return self._seen_through.get(symbol)

    def release(self) -> list[ReleasedMinute]:
        """Every minute that may be computed now, oldest first."""
        out = []
        now = self._clock()
        for minute in sorted(self._pending):
            complete = self._complete(minute)
            timed_out = not complete and now - self._first_seen[minute] >= self.wait_s
            if not (complete or timed_out):
                break
            out.append(ReleasedMinute(minute, self._pending.pop(minute), self._first_seen.pop(minute), timed_out))
            self.released_through = minute
        return out

    def _complete(self, minute: int) -> bool:
        bars = self._pending[minute]
        return all(s in bars or self._seen_through.get(s, -1) >= minute for s in self.symbols)
