from __future__ import annotations

import pytest

from scalper_shared.core.ratelimit import RateLimit, SlidingWindow


@pytest.mark.parametrize(("text", "count", "window"),
                         [("100/1s", 100, 1.0), ("5/1m", 5, 60.0), ("20/500ms", 20, 0.5), ("10/s", 10, 1.0)])
def test_parse(text: str, count: int, window: float) -> None:
    assert RateLimit.parse(text) == RateLimit(count, window)


@pytest.mark.parametrize("text", ["100", "0/1s", "1/0s", "abc/1s", "5/1d"])
def test_parse_rejects_bad_text_with_the_value(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit.parse(text)


def test_101_events_in_one_second_let_exactly_100_through() -> None:
    window = SlidingWindow(RateLimit.parse("100/1s"))
    allowed = [window.try_acquire(10.0 + i * 0.009) for i in range(101)]
    assert allowed.count(True) == 100 and allowed[-1] is False


def test_the_window_slides() -> None:
    window = SlidingWindow(RateLimit(2, 1.0))
    assert window.try_acquire(0.0) and window.try_acquire(0.5)
    assert not window.try_acquire(0.9)
    assert window.retry_after(0.9) == pytest.approx(0.1)
    assert window.try_acquire(1.0)
