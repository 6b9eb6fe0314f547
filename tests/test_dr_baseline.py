"""The 10-in-10 customer baseline and its day-of adjustment on hand-checked series:
weekday loads that are a known constant per day plus 10 kW per local hour, so every
expected figure below is arithmetic on the page."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from assets.dr_baseline import customer_baseline

TZ = "America/Los_Angeles"
LA = ZoneInfo(TZ)
EVENT_START = datetime(2026, 7, 15, 17, 0, tzinfo=LA)  # a Wednesday, 17:00–19:00 local
EVENT_END = EVENT_START + timedelta(hours=2)
EARLIER_EVENT = date(2026, 7, 8)
# The ten most recent weekdays before the event that were not an event day, newest first.
TEN_DAYS = [date(2026, 7, d) for d in (14, 13, 10, 9, 7, 6, 3, 2, 1)] + [date(2026, 6, 30)]


def series(level_on, start=date(2026, 5, 1), end=date(2026, 7, 16), hour_slope=10.0) -> pd.Series:
    """15-minute kW by UTC interval start: level_on(day) + slope × local hour on weekdays,
    40 kW flat at weekends."""
    stamps = pd.date_range(pd.Timestamp(start, tz=TZ), pd.Timestamp(end, tz=TZ), freq="15min", inclusive="left")
    values = [
        40.0 if t.weekday() >= 5 else level_on(t.date()) + hour_slope * t.hour
        for t in stamps
    ]
    return pd.Series(values, index=stamps.tz_convert("UTC"))


def level(day: date) -> float:
    if day == EARLIER_EVENT:
        return 999.0  # an event day: averaging it in would show
    if day in TEN_DAYS:
        return 100.0 + (TEN_DAYS.index(day) + 1)  # 101 … 110: mean 105.5
    return 500.0  # older days: reaching past the ten would show


def test_ten_eligible_days_same_wall_clock_intervals():
    load = series(level)
    before_the_event_day = load[load.index < pd.Timestamp(EVENT_START.date(), tz=TZ)]
    baseline = customer_baseline(before_the_event_day, EVENT_START, EVENT_END, TZ, {EARLIER_EVENT})
    assert baseline.days_used == TEN_DAYS
    rows = baseline.intervals
    assert len(rows) == 8 and rows.interval_start.iloc[0] == pd.Timestamp("2026-07-16 00:00", tz="UTC")
    # 17:00–17:45 → 105.5 + 170; 18:00–18:45 → 105.5 + 180.
    assert rows.cbl_kw.tolist() == [275.5] * 4 + [285.5] * 4
    # No load on record for the event day's window: unadjusted, and said so.
    assert baseline.ratio == 1.0 and baseline.note.startswith("no complete load in the adjustment window")


@pytest.mark.parametrize(("scale", "ratio"), [(1.1, 1.1), (0.9, 0.9), (1.5, 1.2), (0.5, 0.8)])
def test_day_of_adjustment_is_the_window_ratio_clamped(scale, ratio):
    load = series(level)
    # 13:00–16:00 local on the event day: the baseline there is 105.5 + 10 × 13, 14, 15.
    window = pd.date_range(EVENT_START - timedelta(hours=4), EVENT_START - timedelta(hours=1), freq="15min", inclusive="left")
    day_of = pd.Series([scale * (105.5 + 10 * t.hour) for t in window.tz_convert(TZ)], index=window.tz_convert("UTC"))
    history = pd.concat([load[load.index < window[0]], day_of])
    baseline = customer_baseline(history, EVENT_START, EVENT_END, TZ, {EARLIER_EVENT})
    assert baseline.ratio == pytest.approx(ratio)
    assert baseline.ratio_unclamped == pytest.approx(scale)
    assert baseline.intervals.adjusted_kw.tolist() == pytest.approx([ratio * v for v in [275.5] * 4 + [285.5] * 4])


def test_a_day_with_a_missing_interval_is_not_eligible():
    load = series(level)
    gap = pd.Timestamp(datetime(2026, 7, 14, 18, 15, tzinfo=LA)).tz_convert("UTC")
    baseline = customer_baseline(load.drop(gap), EVENT_START, EVENT_END, TZ, {EARLIER_EVENT})
    # 14 July drops out and 29 June (level 500) comes in: (105.5 × 10 − 101 + 500) / 10.
    assert baseline.days_used == TEN_DAYS[1:] + [date(2026, 6, 29)]
    assert baseline.intervals.cbl_kw.iloc[0] == pytest.approx((1055 - 101 + 500) / 10 + 170)


def test_weekend_events_average_weekend_days_and_dst_keeps_the_wall_clock():
    # Saturday 7 November 2026, five days after US clocks went back: the same local
    # hours on earlier Saturdays and Sundays were an hour later in UTC.
    start = datetime(2026, 11, 7, 17, 0, tzinfo=LA)
    load = series(lambda day: 0.0, start=date(2026, 9, 1), end=date(2026, 11, 8))
    weekend = load.copy()
    local = weekend.index.tz_convert(TZ)
    weekend[local.weekday >= 5] = 10.0 * local[local.weekday >= 5].hour
    baseline = customer_baseline(weekend[weekend.index < start], start, start + timedelta(hours=1), TZ)
    assert all(day.weekday() >= 5 for day in baseline.days_used) and len(baseline.days_used) == 10
    assert baseline.intervals.cbl_kw.tolist() == [170.0] * 4


def test_no_eligible_day_means_no_baseline():
    load = series(level, start=date(2026, 7, 11))  # only a weekend and event days before
    assert customer_baseline(load[load.index < pd.Timestamp("2026-07-13", tz=TZ)], EVENT_START, EVENT_END, TZ,
                             {date(2026, 7, d) for d in range(1, 15)}) is None


def test_a_facility_without_any_history_has_no_baseline():
    """A new warehouse: the load history query returns no rows at all."""
    nothing = pd.DataFrame([], columns=["interval_start", "grid_kw"]).set_index("interval_start").grid_kw
    assert customer_baseline(nothing, EVENT_START, EVENT_END, TZ) is None
