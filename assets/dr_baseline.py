"""Customer baseline load (CBL) for a demand-response event: what a facility would have
drawn without the event, by the method utilities settle DR on.

CAISO's "10 in 10": for each event interval, the average load in the same interval
(on the facility's wall clock) over the 10 most recent eligible days before the event,
eligible meaning the same day type (weekday or weekend), not itself a DR event day,
and with every interval of the event and of the adjustment window on record. Then the
day-of adjustment: the ratio of the actual load to that baseline over the window from
4 hours to 1 hour before the event, clamped to 0.8–1.2, scales the whole baseline, so a
hot day's baseline is a hot day's.

Pure pandas, so the planner, the performance mart and hand-checked tests share it.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

INTERVAL = pd.Timedelta(minutes=15)


@dataclass(frozen=True)
class BaselineRule:
    days: int = 10
    lookback_days: int = 60  # how far back to look for eligible days
    adjustment_start: timedelta = timedelta(hours=4)  # before the event
    adjustment_end: timedelta = timedelta(hours=1)  # before the event: the hour just before is excluded (pre-event ramping)
    clamp: tuple[float, float] = (0.8, 1.2)


@dataclass
class Baseline:
    """Per event interval: the unadjusted and adjusted baseline, kW; the days averaged
    and the adjustment ratio applied (1.0 when the window had no load on record)."""

    intervals: pd.DataFrame  # interval_start (UTC), cbl_kw, adjusted_kw
    days_used: list[date]
    ratio: float
    ratio_unclamped: float | None
    note: str | None = None


def customer_baseline(
    load_kw: pd.Series,
    event_start: datetime,
    event_end: datetime,
    timezone: str,
    event_days: set[date] = frozenset(),
    rule: BaselineRule = BaselineRule(),
) -> Baseline | None:
    """`load_kw`: the facility's average kW per 15-minute interval, indexed by UTC
    interval start. `event_days`: local dates of the facility's earlier DR events.
    None when no eligible day is on record."""
    start, end = pd.Timestamp(event_start).tz_convert("UTC"), pd.Timestamp(event_end).tz_convert("UTC")
    event_slots = pd.date_range(start, end, freq=INTERVAL, inclusive="left")
    window_slots = pd.date_range(start - rule.adjustment_start, start - rule.adjustment_end, freq=INTERVAL, inclusive="left")
    load = load_kw.dropna()
    index = pd.DatetimeIndex(load.index)
    # A facility with no history at all (a new warehouse) comes as an empty, zone-less index.
    load.index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    # The history by wall-clock time, looked up once per candidate day: a burst plans
    # hundreds of events, and converting zones per day was most of a plan's time. A
    # repeated wall-clock time (the hour clocks fall back) keeps its first occurrence; a
    # time that does not exist on a day (clocks spring forward) is not found, and that
    # day is not eligible.
    wall = load.index.tz_convert(timezone).tz_localize(None)
    first = ~wall.duplicated(keep="first")
    wall, values = wall[first], load.to_numpy()[first]
    wanted = event_slots.append(window_slots).tz_convert(timezone).tz_localize(None)

    event_day = start.tz_convert(timezone).date()
    weekend = _is_weekend(event_day)
    days_used: list[date] = []
    profiles: list[np.ndarray] = []
    for back in range(1, rule.lookback_days + 1):
        day = event_day - timedelta(days=back)
        if _is_weekend(day) != weekend or day in event_days:
            continue
        found = wall.get_indexer(wanted - pd.Timedelta(days=back))
        if (found < 0).any():
            continue  # a day without every interval on record would bias the average
        profiles.append(values[found])
        days_used.append(day)
        if len(days_used) == rule.days:
            break
    if not profiles:
        return None
    average = np.mean(profiles, axis=0)
    cbl, window_cbl = average[: len(event_slots)], average[len(event_slots):]

    actual = load.reindex(window_slots)
    note = None
    if actual.isna().any() or window_cbl.sum() <= 0:
        ratio, unclamped = 1.0, None
        note = "no complete load in the adjustment window: baseline unadjusted"
    else:
        unclamped = float(actual.mean() / window_cbl.mean())
        ratio = min(max(unclamped, rule.clamp[0]), rule.clamp[1])
    intervals = pd.DataFrame({"interval_start": event_slots, "cbl_kw": cbl, "adjusted_kw": cbl * ratio})
    return Baseline(intervals, days_used, ratio, unclamped, note)


def _is_weekend(day: date) -> bool:
    return day.weekday() >= 5
