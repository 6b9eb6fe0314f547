"""Numbers a user would not trust (issue 18, defects 14, 16, 17, 18), as a BI user reads
them from the marts, on the simulator's fleet loaded through the source assets.

- The open hour: the simulator's clock stands 35 minutes into an hour; the hour, its
  open quarter, the day and each meter's quarter still average demand between the
  lowest and highest reading, and completeness shows what is missing.
- Carbon budgets measured a few days of a year project the year and are rated on it.
- Prices are in the currency of their market (GB in GBP, DE-LU in EUR, NSW1 in AUD), the
  costs too; a zone nobody knows has no currency rather than USD.
- A home's PV meter at dawn, five Tuesdays in a row, raises no load deviation, while a
  grid meter whose load triples still does.
"""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from dagster import materialize

from assets.carbon import grid_carbon_intensity
from assets.dbt_models import dbt_derived_models, dbt_incremental_models, dbt_models
from assets.prices import grid_prices
from assets.telemetry import meter_readings
from assets.weather import weather_hourly
from orchestration.runs import hourly_range_tags
from resources.dbt import dbt_cli
from simulator.config import SimulatorConfig
from simulator.fleet import build_fleet
from simulator.prices import CURRENCIES
from simulator.server import SimulatorServer
from tests.conftest import load_registry, own_warehouse, source_resources

SEED, FACILITIES = 11, 8  # one facility per city: every price zone of the simulator
# Days no other module loads (loading an hour replaces it for every meter).
DAY = datetime(2026, 10, 20, tzinfo=UTC)
NOW = DAY + timedelta(hours=14, minutes=35)  # the simulator's clock: 14:00 is the open hour
LOADED = (DAY + timedelta(hours=11), DAY + timedelta(hours=15))
OPEN_HOUR = DAY + timedelta(hours=14)
# Five Tuesdays around dawn in Toronto (sunrise 06:50–07:25 EDT = 10:50–11:25 UTC).
TUESDAYS = [datetime(2026, 9, 1, tzinfo=UTC) + timedelta(weeks=w) for w in range(5)]
DAWN = (timedelta(hours=9), timedelta(hours=15))
FLEET = build_fleet(SEED, FACILITIES, interval_s=900)
HOME = next(f for f in FLEET.facilities if f.archetype == "home_pv_battery")
HOME_PV = next(m.meter_id for m in FLEET.meters if m.facility_id == HOME.facility_id and m.energy_source == "solar")
HOME_HVAC = next(m.meter_id for m in FLEET.meters if m.facility_id == HOME.facility_id and m.end_use == "hvac")
SURGE = TUESDAYS[-1] + timedelta(hours=13)  # the last Tuesday, 09:00 in Toronto: HVAC load triples
TOLERANCE = 0.001  # kW: readings state active power to the watt, energy a little finer


def rows(engine, query: str, **params) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(query), params)]


def build(resources, start: datetime, end: datetime) -> None:
    assert materialize([dbt_models], resources=resources).success
    assert materialize([dbt_incremental_models], resources=resources, tags=hourly_range_tags(start, end)).success
    assert materialize([dbt_derived_models], resources=resources).success


@pytest.fixture(scope="module")
def open_hour(warehouse, dbt_manifest, engine):
    """Four hours of the fleet up to 35 minutes into the last, with that day's weather,
    prices and carbon intensity."""
    config = SimulatorConfig(seed=SEED, facilities=FACILITIES, interval_s=300, now=lambda: NOW)
    with SimulatorServer(config) as server:
        load_registry(warehouse, server.url)
        resources = {**source_resources(warehouse, server.url, max_retries=0), "dbt": dbt_cli()}
        assert materialize([meter_readings], resources=resources, tags=hourly_range_tags(*LOADED)).success
        assert materialize(
            [weather_hourly, grid_prices, grid_carbon_intensity], resources=resources, partition_key=f"{DAY:%Y-%m-%d}"
        ).success
        build(resources, *LOADED)
    return engine


@pytest.fixture(scope="module")
def dawns(pg_server, dbt_manifest):
    """Five Tuesday mornings of the fleet (the home's PV meter waking up each one), the
    last with the home's HVAC load tripled for an hour, in a warehouse of their own: the
    usual load of a quarter hour of the week is the median of every week the warehouse
    holds, and other modules load other weeks of the same meters."""
    config = SimulatorConfig(seed=SEED, facilities=FACILITIES, interval_s=900, now=lambda: TUESDAYS[-1] + timedelta(days=1))
    with own_warehouse(pg_server, "wattline_dawns") as (database, engine), pytest.MonkeyPatch.context() as env:
        # The postgres resource points dbt at its warehouse through these variables.
        for name, value in database.dbt_env().items():
            env.setenv(name, value)
        with SimulatorServer(config) as server:
            load_registry(database, server.url)
            resources = {**source_resources(database, server.url, max_retries=0), "dbt": dbt_cli()}
            for day in TUESDAYS:
                assert materialize(
                    [meter_readings], resources=resources, tags=hourly_range_tags(day + DAWN[0], day + DAWN[1])
                ).success
            with engine.begin() as conn:
                conn.execute(sa.text(
                    "update raw.meter_readings set active_power_kw = 3 * active_power_kw, energy_kwh = 3 * energy_kwh "
                    "where meter_id = :m and ts >= :s and ts < :e"
                ), {"m": HOME_HVAC, "s": SURGE, "e": SURGE + timedelta(hours=1)})
            build(resources, TUESDAYS[0] + DAWN[0], TUESDAYS[-1] + DAWN[1])
        yield engine


def between(row: dict) -> bool:
    return row["min_kw"] - TOLERANCE <= row["avg_kw"] <= row["max_kw"] + TOLERANCE


# 14 ---------------------------------------------------------------------------------


def test_the_open_hour_averages_demand_over_the_time_it_covers(open_hour):
    facilities = [f.facility_id for f in FLEET.facilities]
    hours = rows(open_hour,
        "select facility_id, hour_start, avg_kw, min_kw, max_kw, energy_kwh, data_completeness "
        "from marts.fct_load_hourly where facility_id = any(:f) and hour_start >= :s and hour_start < :e",
        f=facilities, s=LOADED[0], e=LOADED[1])
    assert len(hours) == FACILITIES * 4
    for hour in hours:
        # What a BI chart draws: the average inside the range the facility drew in the hour.
        assert between(hour), hour
        if hour["hour_start"] == OPEN_HOUR:
            assert hour["data_completeness"] == pytest.approx(35 / 60), hour
        else:
            assert hour["data_completeness"] == pytest.approx(1.0), hour
            assert hour["avg_kw"] == pytest.approx(hour["energy_kwh"]), hour

    # The open quarter (14:30, 5 minutes in), every meter's quarter, the day so far.
    quarters = rows(open_hour,
        "select facility_id, interval_start, avg_kw, min_kw, max_kw, grid_avg_kw, data_completeness "
        "from marts.fct_load_15min where facility_id = any(:f) and interval_start >= :s and interval_start < :e",
        f=facilities, s=OPEN_HOUR, e=OPEN_HOUR + timedelta(hours=1))
    assert {q["interval_start"] for q in quarters} == {OPEN_HOUR + timedelta(minutes=m) for m in (0, 15, 30)}
    assert all(between(q) for q in quarters), [q for q in quarters if not between(q)]
    assert {round(q["data_completeness"], 6) for q in quarters if q["interval_start"].minute == 30} == {round(1 / 3, 6)}
    meters = rows(open_hour,
        "select meter_id, avg_kw, min_kw, max_kw from intermediate.int_meter_load_15min "
        "where facility_id = any(:f) and interval_start = :s", f=facilities, s=OPEN_HOUR + timedelta(minutes=30))
    assert meters and all(between(m) for m in meters), [m for m in meters if not between(m)]
    days = rows(open_hour,
        "select facility_id, avg_kw, min_kw, max_kw, data_completeness from marts.fct_load_daily "
        "where facility_id = any(:f) and day_start <= :t and day_end > :t", f=facilities, t=OPEN_HOUR)
    assert len(days) == FACILITIES and all(between(d) and d["data_completeness"] < 1 for d in days), days
    # Utilisation is the grid demand of the same quarter, not a diluted one.
    utilisation = rows(open_hour,
        "select u.demand_kw, l.grid_avg_kw from marts.fct_facility_utilization_15min u "
        "join marts.fct_load_15min l using (facility_id, interval_start) "
        "where u.facility_id = any(:f) and u.interval_start = :s", f=facilities, s=OPEN_HOUR + timedelta(minutes=30))
    assert len(utilisation) == FACILITIES
    assert all(u["demand_kw"] == pytest.approx(u["grid_avg_kw"]) for u in utilisation)


# 16 ---------------------------------------------------------------------------------


def test_a_budget_measured_part_of_its_period_projects_the_whole_period(open_hour):
    budgets = rows(open_hour,
        "select budget_id, status, pct_used, projected_pct_used, projected_end_kg_co2e, used_kg_co2e, "
        "measured_days, unmeasured_days, period_days, measured_share, warning_pct, critical_pct "
        "from marts.fct_carbon_budget_status where facility_id = any(:f) and used_kg_co2e > 0",
        f=[f.facility_id for f in FLEET.facilities])
    assert budgets
    for budget in budgets:
        share = budget["measured_days"] / budget["period_days"]
        assert budget["measured_share"] == pytest.approx(share) and 0 < share < 1, budget
        assert budget["unmeasured_days"] == pytest.approx(budget["period_days"] - budget["measured_days"]), budget
        # The unmeasured days, before the data as well as after it, at the measured burn rate.
        assert budget["projected_end_kg_co2e"] == pytest.approx(budget["used_kg_co2e"] / share), budget
        rated = max(budget["pct_used"], budget["projected_pct_used"]) if budget["measured_days"] >= 1 else budget["pct_used"]
        expected = ("exceeded" if budget["pct_used"] >= 100 else "critical" if rated >= budget["critical_pct"]
                    else "warning" if rated >= budget["warning_pct"] else "ok")
        assert budget["status"] == expected, budget
    # The burn-down chart ends where the status is rated.
    burn_downs = rows(open_hour,
        "select distinct on (d.budget_id) d.budget_id, d.projected_end_kg_co2e, d.measured_share, "
        "s.projected_end_kg_co2e as status_projection, s.measured_share as status_share "
        "from marts.fct_carbon_budget_daily d join marts.fct_carbon_budget_status s using (budget_id) "
        "where d.budget_id = any(:b) order by d.budget_id, d.day desc", b=[b["budget_id"] for b in budgets])
    assert len(burn_downs) == len(budgets)
    for burn_down in burn_downs:
        assert burn_down["projected_end_kg_co2e"] == pytest.approx(burn_down["status_projection"])
        assert burn_down["measured_share"] == pytest.approx(burn_down["status_share"])


# 17 ---------------------------------------------------------------------------------


def test_prices_and_costs_are_in_the_currency_of_their_market(open_hour):
    zones = {f.price_zone for f in FLEET.facilities}
    assert {"GB", "DE-LU", "NSW1", "COMED"} <= zones
    hourly = rows(open_hour,
        "select price_zone, price_source, currency, currency_source, count(*) as hours "
        "from intermediate.int_zone_prices_hourly where hour_start >= :s and hour_start < :e "
        "group by 1, 2, 3, 4", s=DAY, e=DAY + timedelta(days=1))
    # Day-ahead prices state their currency; the ComEd-format real-time feed does not, and
    # takes the zone's from the seed.
    assert {(r["price_zone"], r["price_source"]): (r["currency"], r["currency_source"]) for r in hourly} == {
        **{(zone, "day_ahead"): (CURRENCIES[zone], "feed") for zone in zones},
        **{(zone, "real_time"): (CURRENCIES[zone], "zone") for zone in zones},
    }
    assert CURRENCIES["GB"] == "GBP" and CURRENCIES["DE-LU"] == "EUR" and CURRENCIES["NSW1"] == "AUD"

    costs = rows(open_hour,
        "select facility_id, price_zone, currency, count(*) as hours, count(energy_cost) as costed "
        "from marts.fct_energy_cost_hourly where facility_id = any(:f) and hour_start >= :s and hour_start < :e "
        "group by 1, 2, 3", f=[f.facility_id for f in FLEET.facilities], s=LOADED[0], e=LOADED[1])
    assert len(costs) == FACILITIES
    for cost in costs:
        assert cost["currency"] == CURRENCIES[cost["price_zone"]] and cost["costed"] == cost["hours"] == 4, cost

    # A zone no feed names a currency for and no seed row knows: no currency, no cost.
    with open_hour.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.grid_prices (zone, interval_start, interval_end, resolution, price_per_mwh, currency, source, intervals) "
            "values ('TRUST-NOWHERE', :t, :t + interval '1 hour', '1h', 50.0, null, 'comed_5min', 12)"
        ), {"t": DAY})
    try:
        [unknown] = rows(open_hour,
            "select currency, currency_source from staging.stg_grid_prices where price_zone = 'TRUST-NOWHERE'")
        assert unknown == {"currency": None, "currency_source": None}
    finally:
        with open_hour.begin() as conn:
            conn.execute(sa.text("delete from raw.grid_prices where zone = 'TRUST-NOWHERE'"))


# 18 ---------------------------------------------------------------------------------


def test_a_pv_meter_at_dawn_is_not_a_load_deviation_and_a_real_one_is_caught(dawns):
    # The situation that raised "Load 82 % below the usual": on the last Tuesday the PV
    # meter's output at some dawn quarter is far below its median of the Tuesdays before,
    # with every reading present.
    [dip] = rows(dawns,
        "with q as (select interval_start, avg_kw, data_completeness from intermediate.int_meter_load_15min "
        "where meter_id = :m and interval_start >= :s and interval_start < :e) "
        "select min(last.avg_kw / nullif(usual.median_kw, 0)) as ratio, min(last.data_completeness) as completeness "
        "from q as last cross join lateral (select percentile_cont(0.5) within group (order by p.avg_kw) as median_kw "
        "from q as p where p.interval_start < :last and p.interval_start::time = last.interval_start::time) as usual "
        "where last.interval_start >= :last and usual.median_kw > 0.05",
        m=HOME_PV, s=TUESDAYS[0], e=TUESDAYS[-1] + timedelta(days=1), last=TUESDAYS[-1])
    assert dip["ratio"] is not None and dip["ratio"] < 0.5 and dip["completeness"] == 1.0, dip

    anomalies = rows(dawns,
        "select meter_id, kind, severity, started_at, ended_at, description from marts.fct_meter_anomalies "
        "where facility_id = :f and kind = 'load_deviation' and started_at < :e",
        f=HOME.facility_id, e=TUESDAYS[-1] + timedelta(days=1))
    assert [a for a in anomalies if a["meter_id"] == HOME_PV] == []
    surge = [a for a in anomalies if a["meter_id"] == HOME_HVAC and a["started_at"] < SURGE + timedelta(hours=1) and a["ended_at"] > SURGE]
    assert surge, anomalies
    assert "above the usual" in surge[0]["description"] or "× the usual" in surge[0]["description"], surge
    # Nothing else at the home those mornings: sunrise and cloud over its PV are not load.
    assert [a for a in anomalies if a not in surge] == []
