from __future__ import annotations

from datetime import date, timedelta

from scalper_ingestion.coverage import coverage
from scalper_shared.core.calendar import trading_day


def _minutes(day: date) -> list:
    session = trading_day(day)
    assert session is not None
    return [session.open + timedelta(minutes=i) for i in range(session.regular_minutes)]


def test_early_close_expects_210_minutes_not_390() -> None:
    report = coverage(_minutes(date(2025, 7, 3)), date(2025, 7, 3), date(2025, 7, 3))
    assert [(r.expected, r.present, r.missing) for r in report] == [(210, 210, 0)]
    assert report[0].day.early_close


def test_holiday_is_not_listed_and_missing_runs_are_found() -> None:
    starts = _minutes(date(2025, 7, 7))
    del starts[60:63]  # 10:30, 10:31, 10:32 ET
    del starts[-1]     # 15:59 ET
    report = coverage(starts, date(2025, 7, 4), date(2025, 7, 7))
    assert [r.day.day for r in report] == [date(2025, 7, 7)]  # 4th: holiday; 5th/6th: weekend
    assert report[0].missing == 4
    assert [str(run) for run in report[0].missing_runs] == ["10:30-10:32 ET (3)", "15:59 ET (1)"]


def test_a_day_without_bars_is_one_missing_run() -> None:
    report = coverage([], date(2025, 7, 1), date(2025, 7, 1))
    assert report[0].present == 0 and report[0].missing_runs[0].minutes == 390
