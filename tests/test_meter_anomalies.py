"""marts.fct_meter_anomalies end to end: hand-made readings through the real loader,
the dbt models built by Dagster, and the anomalies an energy manager would look for."""

import contextlib
import io
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from dagster import materialize

from assets.dbt_models import dbt_derived_models, dbt_incremental_models, dbt_models
from orchestration.runs import hourly_range_tags
from resources.dbt import dbt_cli
from resources.postgres import PostgresResource
from resources.readings_loader import ReadingRules, load_hour
from resources.telemetry_api import READING_COLUMNS

# Four weeks without a daylight-saving change in Berlin, away from other tests' hours
# (loading an hour replaces it for every meter).
START = datetime(2025, 2, 3, tzinfo=UTC)  # a Monday
END = START + timedelta(weeks=4)
FACILITY = "ANOM-F1"
TIMEZONE = ZoneInfo("Europe/Berlin")
STEADY, STUCK, GAPPY, SAGGING = "ANOM-M1", "ANOM-M2", "ANOM-M3", "ANOM-M4"
METERS = {STEADY: 900, STUCK: 300, GAPPY: 900, SAGGING: 900}

# A small week-to-week wobble keeps the baseline's MAD above zero: 1 % of the load.
WEEK_FACTOR = [0.98, 1.0, 1.02, 1.0]
SPIKE_AT = datetime(2025, 2, 25, 13, tzinfo=UTC)  # Tuesday 14:00 in Berlin, fourth week
STUCK_FROM, STUCK_TO = datetime(2025, 2, 10, 8, tzinfo=UTC), datetime(2025, 2, 10, 10, tzinfo=UTC)
MISSING_HOUR = datetime(2025, 2, 11, 9, tzinfo=UTC)
SAG_AT = datetime(2025, 2, 12, 8, 15, tzinfo=UTC)
POOR_PF_AT = datetime(2025, 2, 12, 10, 30, tzinfo=UTC)


def usual_kw(ts: datetime) -> float:
    """The steady meter's weekly shape, by local time: a base load, working hours on top."""
    local = ts.astimezone(TIMEZONE)
    working = local.weekday() < 5 and 7 <= local.hour < 19
    return 20.0 + (40.0 if working else 0.0) + 0.5 * local.hour


def reading(ts, meter, kw, interval_s, voltage=230.0, power_factor=0.95):
    return [
        ts.strftime("%Y-%m-%dT%H:%M:%SZ"), meter, FACILITY, interval_s, kw * interval_s / 3600,
        kw, 1.0, voltage, 10.0, power_factor, 50.0, "grid",
    ]


def readings() -> dict[datetime, list[list]]:
    """Every meter's readings, by the UTC hour they load in."""
    by_hour = defaultdict(list)

    def add(ts, *args, **kwargs):
        by_hour[ts.replace(minute=0)].append(reading(ts, *args, **kwargs))

    ts = START
    while ts < END:
        kw = usual_kw(ts) * WEEK_FACTOR[(ts - START) // timedelta(weeks=1)]
        add(ts, STEADY, 3 * kw if ts == SPIKE_AT else kw, 900)
        ts += timedelta(minutes=15)

    # Stuck: 5-minute readings that vary, except for two hours at exactly 7.5 kW.
    for minute in range(0, 6 * 60, 5):
        ts = datetime(2025, 2, 10, 6, tzinfo=UTC) + timedelta(minutes=minute)
        add(ts, STUCK, 7.5 if STUCK_FROM <= ts < STUCK_TO else 10.0 + minute // 5 % 3, 300)

    for quarter in range(6 * 4):
        ts = datetime(2025, 2, 11, 6, tzinfo=UTC) + timedelta(minutes=15 * quarter)
        if not MISSING_HOUR <= ts < MISSING_HOUR + timedelta(hours=1):
            add(ts, GAPPY, 12.0, 900)
        ts = datetime(2025, 2, 12, 6, tzinfo=UTC) + timedelta(minutes=15 * quarter)
        add(ts, SAGGING, 12.0, 900, voltage=200.0 if ts == SAG_AT else 230.0,
            power_factor=0.75 if ts == POOR_PF_AT else 0.95)
    return by_hour


def load(engine):
    """Register the facility and meters, then load every hour through the real loader."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.facilities (facility_id, name, timezone) values (:f, 'Anomaly test site', :tz) "
            "on conflict (facility_id) do update set timezone = excluded.timezone"
        ), {"f": FACILITY, "tz": TIMEZONE.key})
        for meter, interval_s in METERS.items():
            conn.execute(sa.text(
                "insert into raw.meters (meter_id, facility_id, end_use, interval_s) values (:m, :f, 'process', :s) "
                "on conflict (meter_id) do nothing"
            ), {"m": meter, "f": FACILITY, "s": interval_s})
    header = ",".join(READING_COLUMNS)

    def load_hours(hours):
        for hour, rows in hours:
            body = (header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n").encode()
            result = load_hour(engine, lambda body=body: contextlib.nullcontext(io.BytesIO(body)), hour, ReadingRules())
            assert result.rejected_total == 0, result.rejected

    # Four weeks are 672 hourly loads: a few days at a time (days are separate partitions).
    by_day = defaultdict(list)
    for hour, rows in sorted(readings().items()):
        by_day[hour.date()].append((hour, rows))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(load_hours, by_day.values()))


@pytest.fixture(scope="module")
def anomalies(engine, warehouse, dbt_manifest):
    load(engine)
    resources = {"dbt": dbt_cli(), "postgres": PostgresResource(url=warehouse.url)}
    assert materialize([dbt_models], resources=resources).success
    assert materialize([dbt_incremental_models], resources=resources, tags=hourly_range_tags(START, END)).success
    # dbt build runs the mart's unit tests and data tests too; a failing one fails this.
    result = materialize([dbt_derived_models], resources=resources)
    assert result.success
    assert all(check.passed for check in result.get_asset_check_evaluations())
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select meter_id, facility_id, kind, severity, started_at, ended_at, intervals, "
            "observed_value, expected_value, unit, score, description "
            "from marts.fct_meter_anomalies where meter_id like 'ANOM-%' order by meter_id, started_at"
        )).mappings().all()
    return [dict(row) for row in rows]


def of(anomalies, meter):
    return [a for a in anomalies if a["meter_id"] == meter]


def test_a_spike_on_a_steady_week_is_one_high_load_deviation(anomalies):
    (spike,) = of(anomalies, STEADY)  # four weeks of data: nothing else is flagged
    usual = usual_kw(SPIKE_AT)  # 67 kW on a Tuesday at 14:00
    assert spike["kind"] == "load_deviation"
    assert spike["facility_id"] == FACILITY
    assert (spike["started_at"], spike["ended_at"], spike["intervals"]) == (SPIKE_AT, SPIKE_AT + timedelta(minutes=15), 1)
    # Same slot over the weeks: 0.98, 1, 1.02 and 3 × usual. Median 1.01 × usual, MAD 0.02 × usual,
    # below the floor of 5 % of the median, which is the spread the spike is judged by.
    assert spike["observed_value"] == pytest.approx(3 * usual)
    assert spike["expected_value"] == pytest.approx(1.01 * usual)
    assert spike["observed_value"] > spike["expected_value"]
    assert spike["score"] == pytest.approx(0.6745 * 1.99 / (0.05 * 1.01))
    assert spike["severity"] == "high"
    assert spike["unit"] == "kW"
    assert spike["description"].startswith("Load 3.0× the usual for Tuesday 14:00 (201.0 kW against a usual 67.7 kW")


def test_a_stuck_meter_is_a_flatline(anomalies):
    (flat,) = of(anomalies, STUCK)
    assert flat["kind"] == "flatline"
    assert (flat["started_at"], flat["ended_at"], flat["intervals"]) == (STUCK_FROM, STUCK_TO, 8)
    assert flat["observed_value"] == 7.5
    assert flat["severity"] == "medium"
    assert flat["description"].startswith("Meter stuck at 7.5 kW for 2 h")


def test_a_missing_hour_is_a_gap(anomalies):
    (gap,) = of(anomalies, GAPPY)
    assert gap["kind"] == "gap"
    assert (gap["started_at"], gap["ended_at"], gap["intervals"]) == (MISSING_HOUR, MISSING_HOUR + timedelta(hours=1), 4)
    assert (gap["observed_value"], gap["expected_value"], gap["unit"]) == (0.0, 1.0, "fraction")
    assert gap["severity"] == "medium"
    assert gap["description"] == "No data for 1 h"


def test_a_low_voltage_and_a_poor_power_factor_are_excursions(anomalies):
    sag, poor_pf = of(anomalies, SAGGING)
    assert sag["kind"] == "voltage_excursion"
    assert (sag["started_at"], sag["intervals"]) == (SAG_AT, 1)
    assert (sag["observed_value"], sag["expected_value"], sag["unit"]) == (200.0, 230.0, "V")
    assert sag["score"] == pytest.approx(100 * 30 / 230)  # 13.0 % below: medium
    assert sag["severity"] == "medium"
    assert sag["description"] == "Voltage down to 200.0 V, 13.0 % below the meter's usual 230.0 V, for 15 min"

    assert poor_pf["kind"] == "power_factor_excursion"
    assert (poor_pf["started_at"], poor_pf["intervals"]) == (POOR_PF_AT, 1)
    assert poor_pf["observed_value"] == pytest.approx(0.75)
    assert poor_pf["severity"] == "medium"
