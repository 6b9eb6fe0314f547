"""Source assets against an outside world that misbehaves, with real HTTP, PostgreSQL and
Dagster runs: a transient fault within the retry budget is retried and the partition
holds exactly what the source serves; anything else fails the run with an error naming
the URL, and leaves the warehouse as it was.

Each case is one row of CASES: a feed (what to materialise, what the warehouse holds,
what the source serves), a fault (the body POSTed to the simulator's /v1/sim/faults)
and what must happen. Another feed is a `Feed` and a few rows.
"""

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from dagster import materialize

from assets.carbon import grid_carbon_intensity
from assets.prices import grid_prices
from assets.registry import facilities, meters
from assets.telemetry import meter_readings
from assets.weather import weather_hourly
from simulator.config import SimulatorConfig
from simulator.server import SimulatorServer
from tests.conftest import failure_text, load_registry, source_resources

# The world of test_telemetry_load, so both modules agree on the registry they load.
NOW = datetime(2026, 1, 6, 12, tzinfo=UTC)
SEED, FACILITIES = 11, 3
# Each case gets an hour of its own on a day no other test loads: "an empty hour" stays empty.
FIRST_HOUR = datetime(2026, 1, 2, 0, tzinfo=UTC)
# Fast retries: three of them, 50 ms backoff, so a burst of three is survivable.
FAST = {"max_retries": 3, "backoff_factor": 0.05, "connect_timeout_s": 2.0, "read_timeout_s": 10.0}


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def hour(slot: int) -> datetime:
    return FIRST_HOUR + timedelta(hours=slot)


# --- feeds: what each source asset loads, and how to compare it with what is served -----


@dataclass(frozen=True)
class Feed:
    name: str
    path: str  # the API path the asset fetches: the fault's path_prefix
    assets: tuple
    # The case's own partition, from its index in CASES (hourly: that many hours after
    # FIRST_HOUR; a daily feed would count days); None: unpartitioned.
    partition_key: Callable[[int], str | None]
    served: Callable[[str, int], object]  # what the source serves for it, straight from the API
    stored: Callable[[sa.Engine, int], object]  # the same, as the warehouse holds it
    snapshot: Callable[[sa.Engine, int], object]  # every stored column, load metadata included


def readings_served(url: str, slot: int) -> dict[tuple[str, str], float]:
    params = {"start": iso(hour(slot)), "end": iso(hour(slot) + timedelta(hours=1)), "format": "csv"}
    text = requests.get(f"{url}/v1/readings", params=params, timeout=30).text
    return {(row["meter_id"], row["ts"]): float(row["energy_kwh"]) for row in csv.DictReader(io.StringIO(text))}


def readings_stored(engine: sa.Engine, slot: int) -> dict[tuple[str, str], float]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select meter_id, to_char(ts at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), energy_kwh "
                "from raw.meter_readings where ts >= :s and ts < :e"
            ),
            {"s": hour(slot), "e": hour(slot) + timedelta(hours=1)},
        ).all()
    return {(meter, ts): kwh for meter, ts, kwh in rows}


def readings_snapshot(engine: sa.Engine, slot: int) -> tuple[list, int]:
    """The hour's rows, every column (`_loaded_at` too: a reload would change it), and
    its quarantined rows."""
    window = {"s": hour(slot), "e": hour(slot) + timedelta(hours=1)}
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select * from raw.meter_readings where ts >= :s and ts < :e order by meter_id, ts"), window).all()
        rejected = conn.scalar(sa.text("select count(*) from raw.meter_readings_rejected where hour >= :s and hour < :e"), window)
    return [tuple(row) for row in rows], rejected


def meters_served(url: str, slot: int) -> list[tuple]:
    return sorted(
        (m["meter_id"], m["facility_id"], m["energy_source"], m["end_use"], m["interval_s"], True)
        for m in requests.get(f"{url}/v1/meters", timeout=10).json()
    )


def meters_stored(engine: sa.Engine, slot: int) -> list[tuple]:
    with engine.connect() as conn:
        # Active ones: other modules' meters share the database and are retired here.
        rows = conn.execute(sa.text("select meter_id, facility_id, energy_source, end_use, interval_s, active from raw.meters where active"))
        return sorted(tuple(row) for row in rows)


def meters_snapshot(engine: sa.Engine, slot: int) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(sa.text("select * from raw.meters")))


FIRST_DAY = datetime(2025, 12, 1, tzinfo=UTC)


def day(slot: int) -> datetime:
    return FIRST_DAY + timedelta(days=slot)


def day_window(slot: int) -> dict:
    return {"s": day(slot), "e": day(slot) + timedelta(days=1)}


def fleet(url: str) -> list[dict]:
    return requests.get(f"{url}/v1/facilities", timeout=10).json()


def carbon_served(url: str, slot: int) -> list[tuple]:
    served = []
    for zone in sorted({f["grid_zone"] for f in fleet(url)}):
        for factor in ("lifecycle", "direct"):
            params = {"zone": zone, "start": iso(day(slot)), "end": iso(day(slot) + timedelta(days=1)), "emissionFactorType": factor}
            points = requests.get(f"{url}/v3/carbon-intensity/past-range", params=params, timeout=10).json()["data"]
            served += [(zone, factor, p["datetime"][:19] + "Z", float(p["carbonIntensity"])) for p in points]
    return sorted(served)


def utc_text(column: str) -> str:
    """A timestamptz as the ISO text the APIs serve."""
    return f"to_char({column} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


def day_rows(engine: sa.Engine, query: str, slot: int) -> list[tuple]:
    """The rows of `query` (with :s and :e for the case's day), sorted."""
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(sa.text(query), day_window(slot)))


def carbon_stored(engine: sa.Engine, slot: int) -> list[tuple]:
    return day_rows(engine, f"select zone, factor_type, {utc_text('hour_start')}, carbon_intensity_g_per_kwh "
                            "from raw.grid_carbon_intensity where hour_start >= :s and hour_start < :e", slot)


def day_ahead_served(url: str, slot: int) -> list[tuple]:
    served = []
    for zone in sorted({f["price_zone"] for f in fleet(url)}):
        body = requests.get(f"{url}/v1/prices/day-ahead", params={"zone": zone, "date": f"{day(slot):%Y-%m-%d}"}, timeout=10).json()
        served += [(zone, p["start"], p["price"]) for p in body["prices"]]
    return sorted(served)


def day_ahead_stored(engine: sa.Engine, slot: int) -> list[tuple]:
    return day_rows(engine, f"select zone, {utc_text('interval_start')}, price_per_mwh from raw.grid_prices "
                            "where source = 'day_ahead' and interval_start >= :s and interval_start < :e", slot)


def weather_served(url: str, slot: int) -> list[tuple]:
    served = []
    for facility in fleet(url):
        # One request per 0.1° cell, as the asset asks.
        params = {"latitude": round(facility["latitude"], 1), "longitude": round(facility["longitude"], 1),
                  "hourly": "temperature_2m", "start_date": f"{day(slot):%Y-%m-%d}", "end_date": f"{day(slot):%Y-%m-%d}", "timezone": "GMT"}
        body = requests.get(f"{url}/v1/archive", params=params, timeout=10).json()["hourly"]
        served += [(facility["facility_id"], t + ":00Z", v) for t, v in zip(body["time"], body["temperature_2m"], strict=True)]
    return sorted(served)


def weather_stored(engine: sa.Engine, slot: int) -> list[tuple]:
    return day_rows(engine, f"select facility_id, {utc_text('time')}, temperature_c from raw.weather_hourly "
                            "where time >= :s and time < :e", slot)


def daily_snapshot(table: str, time_column: str) -> Callable[[sa.Engine, int], list]:
    """Every column of the case's day in `table`, load metadata included."""
    return lambda engine, slot: day_rows(engine, f"select * from raw.{table} where {time_column} >= :s and {time_column} < :e", slot)


READINGS = Feed(
    "readings", "/v1/readings", (meter_readings,), lambda slot: f"{hour(slot):%Y-%m-%d-%H}:00",
    readings_served, readings_stored, readings_snapshot,
)
# Facilities first, unfaulted: the faults target the meters request.
METERS = Feed("meters", "/v1/meters", (facilities, meters), lambda slot: None, meters_served, meters_stored, meters_snapshot)


# Daily feeds: each case's day counts from FIRST_DAY, well before the simulator's clock.
CARBON = Feed(
    "carbon", "/v3/carbon-intensity", (grid_carbon_intensity,), lambda slot: f"{day(slot):%Y-%m-%d}",
    carbon_served, carbon_stored, daily_snapshot("grid_carbon_intensity", "hour_start"),
)
DAY_AHEAD = Feed(
    "day-ahead prices", "/v1/prices/day-ahead", (grid_prices,), lambda slot: f"{day(slot):%Y-%m-%d}",
    day_ahead_served, day_ahead_stored, daily_snapshot("grid_prices", "interval_start"),
)
WEATHER = Feed(
    "weather", "/v1/archive", (weather_hourly,), lambda slot: f"{day(slot):%Y-%m-%d}",
    weather_served, weather_stored, daily_snapshot("weather_hourly", "time"),
)


# --- cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    feed: Feed
    fault: dict  # POST /v1/sim/faults, less the path_prefix (the feed's path)
    loads: bool  # True: the run succeeds and stores exactly what is served; False: it fails, stores nothing
    options: dict = field(default_factory=dict)  # resource settings on top of FAST
    prefilled: bool = False  # the partition held data before the faulty run
    error: tuple[str, ...] = ()  # what the failure must say besides the URL
    hits: int | None = None  # requests the fault must have answered; default its count
    min_gap_s: float = 0.0  # least time between consecutive hits


CASES = [
    # Transient faults within the budget (3 retries): retried, and the data is exact.
    Case("readings-500-burst", READINGS, {"kind": "error", "status": 500, "count": 3}, loads=True),
    Case("readings-503-burst", READINGS, {"kind": "error", "status": 503, "count": 2}, loads=True, prefilled=True),
    # Retry-After: 1 is honoured instead of the 50 ms backoff.
    Case("readings-429", READINGS, {"kind": "rate_limit", "retry_after_s": 1, "count": 2}, loads=True, min_gap_s=1.0),
    # Headers later than the read timeout: urllib3 retries the read.
    Case(
        "readings-slow", READINGS, {"kind": "slow", "delay_s": 2.0, "count": 2}, loads=True,
        options={"read_timeout_s": 0.5},
    ),
    # Bursts longer than the budget fail the run, naming URL and status, and write nothing.
    Case(
        "readings-503-exhausted-empty-hour", READINGS, {"kind": "error", "status": 503, "count": 5}, loads=False,
        options={"max_retries": 1}, error=("answered 503",), hits=2,
    ),
    Case(
        "readings-500-exhausted-full-hour", READINGS, {"kind": "error", "status": 500, "count": 5}, loads=False,
        options={"max_retries": 1}, prefilled=True, error=("answered 500",), hits=2,
    ),
    Case(
        "readings-429-exhausted-full-hour", READINGS, {"kind": "rate_limit", "retry_after_s": 0, "count": 5}, loads=False,
        options={"max_retries": 1}, prefilled=True, error=("answered 429",), hits=2,
    ),
    # A body that breaks off after the headers (cut, or silent longer than the read
    # timeout) has rows in the COPY already: the load rolls back to before it and fetches
    # the hour whole again, under the same retry budget (readings_loader._copy_whole_body).
    Case("readings-cut-retried", READINGS, {"kind": "truncate", "keep_fraction": 0.4, "count": 2}, loads=True),
    Case(
        "readings-stall-mid-body-retried", READINGS, {"kind": "slow", "delay_s": 2.0, "keep_fraction": 0.5, "count": 1},
        loads=True, options={"read_timeout_s": 0.5}, prefilled=True,
    ),
    # Beyond the budget: the run fails and the hour keeps what it held (nothing, or the old rows).
    Case(
        "readings-cut-exhausted-empty-hour", READINGS, {"kind": "truncate", "keep_fraction": 0.4, "count": 5}, loads=False,
        options={"max_retries": 1}, error=("broke off", "never arrived whole"), hits=2,
    ),
    Case(
        "readings-cut-exhausted-full-hour", READINGS, {"kind": "truncate", "keep_fraction": 0.9, "count": 5}, loads=False,
        options={"max_retries": 1}, prefilled=True, error=("broke off", "never arrived whole"), hits=2,
    ),
    Case(
        "readings-stall-exhausted-full-hour", READINGS, {"kind": "slow", "delay_s": 2.0, "keep_fraction": 0.5, "count": 5},
        loads=False, options={"read_timeout_s": 0.5, "max_retries": 1}, prefilled=True, error=("broke off", "timed out"), hits=2,
    ),
    # A 200 with a body that does not parse is not transient: no retry, a clear failure.
    Case("readings-malformed-empty-hour", READINGS, {"kind": "malformed", "count": 1}, loads=False, error=("CSV header",)),
    Case(
        "readings-malformed-full-hour", READINGS, {"kind": "malformed", "count": 2}, loads=False, prefilled=True,
        error=("CSV header",), hits=1,
    ),
    # The registry: same rules, and raw.meters is untouched by a failure.
    Case("meters-503-burst", METERS, {"kind": "error", "count": 3}, loads=True),
    Case("meters-malformed", METERS, {"kind": "malformed", "count": 1}, loads=False, error=("not JSON",)),
    # A JSON body is read whole before anything is used, so a cut or a stall is fetched again.
    Case("meters-cut-retried", METERS, {"kind": "truncate", "count": 2}, loads=True),
    Case(
        "meters-stall-retried", METERS, {"kind": "slow", "delay_s": 2.0, "keep_fraction": 0.5, "count": 1}, loads=True,
        options={"read_timeout_s": 0.5},
    ),
    Case(
        "meters-cut-exhausted", METERS, {"kind": "truncate", "count": 5}, loads=False, options={"max_retries": 1},
        error=("broke off", "IncompleteRead"), hits=2,
    ),
    # The daily feeds: every zone or location is fetched before the day is written, so a
    # failure anywhere leaves the day as it was.
    Case("carbon-500-burst", CARBON, {"kind": "error", "status": 500, "count": 3}, loads=True),
    Case("carbon-cut-retried", CARBON, {"kind": "truncate", "count": 2}, loads=True, prefilled=True),
    Case(
        "carbon-429-exhausted-full-day", CARBON, {"kind": "rate_limit", "retry_after_s": 0, "count": 5}, loads=False,
        options={"max_retries": 1}, prefilled=True, error=("answered 429",), hits=2,
    ),
    Case("day-ahead-503-burst", DAY_AHEAD, {"kind": "error", "count": 2}, loads=True),
    Case("day-ahead-malformed-full-day", DAY_AHEAD, {"kind": "malformed", "count": 1}, loads=False, prefilled=True, error=("not JSON",)),
    Case("weather-slow-retried", WEATHER, {"kind": "slow", "delay_s": 2.0, "count": 1}, loads=True, options={"read_timeout_s": 0.5}),
    Case(
        "weather-503-exhausted-full-day", WEATHER, {"kind": "error", "count": 5}, loads=False,
        options={"max_retries": 1}, prefilled=True, error=("answered 503",), hits=2,
    ),
    Case(
        "meters-503-exhausted", METERS, {"kind": "error", "count": 5}, loads=False, options={"max_retries": 1},
        error=("answered 503",), hits=2,
    ),
]


@pytest.fixture(scope="module")
def simulator():
    with SimulatorServer(SimulatorConfig(seed=SEED, facilities=FACILITIES, interval_s=60, now=lambda: NOW)) as server:
        yield server


@pytest.fixture(scope="module")
def registry(warehouse, simulator):
    load_registry(warehouse, simulator.url)


@pytest.fixture
def faults(simulator):
    """The simulator's fault book, empty before and after each test."""
    book = simulator.app.state.faults
    book.clear()
    yield book
    book.clear()


@pytest.mark.parametrize(("slot", "case"), list(enumerate(CASES)), ids=[case.id for case in CASES])
def test_a_source_fault_is_survived_or_fails_cleanly(slot, case, simulator, warehouse, engine, registry, faults):
    feed, key = case.feed, case.feed.partition_key(slot)
    if case.prefilled:
        assert materialize(list(feed.assets), resources=source_resources(warehouse, simulator.url, **FAST), partition_key=key).success
        assert feed.stored(engine, slot)
    elif key is not None:
        assert not feed.stored(engine, slot)  # nobody loaded this case's partition yet
    before = feed.snapshot(engine, slot)

    response = requests.post(f"{simulator.url}/v1/sim/faults", json={"path_prefix": feed.path, **case.fault}, timeout=5)
    assert response.status_code == 201, response.text
    resources = source_resources(warehouse, simulator.url, **{**FAST, **case.options})
    result = materialize(list(feed.assets), resources=resources, partition_key=key, raise_on_error=False)

    [state] = faults.snapshot()
    assert state.hits == (case.hits if case.hits is not None else case.fault["count"])
    gaps = [later - earlier for earlier, later in zip(state.hit_times, state.hit_times[1:], strict=False)]
    assert all(gap >= case.min_gap_s for gap in gaps), gaps
    if case.loads:
        assert result.success, failure_text(result)
        stored = feed.stored(engine, slot)
        assert stored and stored == feed.served(simulator.url, slot)
    else:
        assert not result.success
        failure = failure_text(result)
        assert f"{simulator.url}{feed.path}" in failure, failure
        assert all(phrase in failure for phrase in case.error), failure
        assert feed.snapshot(engine, slot) == before

