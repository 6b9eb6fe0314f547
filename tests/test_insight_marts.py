"""Insight marts (grid impact, recommendations, sustainability score) on a hand-made world.

One facility, INS-F1 (UTC, contract demand 100 kW), reports two whole days a week
apart, 2026-02-01 (day A) and 2026-02-08 (day B), every 15 minutes:
- INS-F1-M1, grid, process: 90 kW; power factor 0.85 from 00:00 to 06:00, else 0.95;
  on day B one peak quarter at 20:00 (100 kW) and one voltage spike at 12:00 (260 V);
- INS-F1-EV, grid, EV charging: 10 kW from 18:00 to 24:00, else 0 kW;
- INS-F1-PV, solar: 20 kW from 08:00 to 16:00, else 0 kW.
Grid demand is therefore 90 kW, 100 kW in the evening, 110 kW at the peak: always above
85 % of contract. Zone prices are 20 + hour USD/MWh on day A, 0.5 more on day B; grid
intensity (lifecycle) 400 g/kWh on day A, 380 on day B.
"""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from dagster import materialize

from assets.dbt_models import dbt_derived_models, dbt_incremental_models, dbt_models
from orchestration.runs import hourly_range_tags
from resources.dbt import dbt_cli
from resources.postgres import PostgresResource
from tests.support import load

FACILITY = "INS-F1"
DAY_A = datetime(2026, 2, 1, tzinfo=UTC)
DAY_B = datetime(2026, 2, 8, tzinfo=UTC)
METERS = [  # meter_id, energy source, end use
    ("INS-F1-M1", "grid", "process"),
    ("INS-F1-EV", "grid", "ev"),
    ("INS-F1-PV", "solar", None),
]


def meter_state(meter: str, at: datetime) -> tuple[float, float, float]:
    """kW, power factor and voltage of a meter in the quarter hour starting at `at`."""
    h = at.hour
    if meter == "INS-F1-M1":
        kw = 100.0 if at == DAY_B + timedelta(hours=20) else 90.0
        volts = 260.0 if at == DAY_B + timedelta(hours=12) else 230.0
        return kw, 0.85 if h < 6 else 0.95, volts
    if meter == "INS-F1-EV":
        return (10.0 if h >= 18 else 0.0), 0.95, 230.0
    return (20.0 if 8 <= h < 16 else 0.0), 1.0, 230.0


def hour_readings(hour: datetime) -> list[list]:
    rows = []
    for quarter in range(4):
        at = hour + timedelta(minutes=15 * quarter)
        for meter, source, _ in METERS:
            kw, pf, volts = meter_state(meter, at)
            rows.append([
                at.strftime("%Y-%m-%dT%H:%M:%SZ"), meter, FACILITY, 900, kw * 0.25, kw,
                round(kw * 0.33, 3), volts, round(kw * 1000 / (volts * 3**0.5), 3), pf, 50.0, source,
            ])
    return rows


def build_world(engine) -> None:
    hours = [day + timedelta(hours=h) for day in (DAY_A, DAY_B) for h in range(24)]
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into raw.facilities (facility_id, name, archetype, timezone, contract_demand_kw, price_zone, grid_zone) "
            "values (:f, 'Insight test plant', 'plant', 'UTC', 100, 'INS-PZ', 'INS-GZ') on conflict do nothing"
        ), {"f": FACILITY})
        conn.execute(sa.text(
            "insert into raw.meters (meter_id, facility_id, energy_source, end_use, interval_s) "
            "values (:m, :f, :s, :u, 900) on conflict do nothing"
        ), [{"m": m, "f": FACILITY, "s": s, "u": u} for m, s, u in METERS])
        conn.execute(sa.text(
            "insert into raw.grid_prices (zone, interval_start, interval_end, resolution, price_per_mwh, currency, source, intervals) "
            "values ('INS-PZ', :t, :t + interval '1 hour', '1h', :p, 'USD', 'comed_5min', 12) on conflict do nothing"
        ), [{"t": t, "p": 20 + t.hour + (0.5 if t >= DAY_B else 0.0)} for t in hours])
        conn.execute(sa.text(
            "insert into raw.grid_carbon_intensity (zone, hour_start, factor_type, carbon_intensity_g_per_kwh, is_estimated) "
            "values ('INS-GZ', :t, 'lifecycle', :g, false) on conflict do nothing"
        ), [{"t": t, "g": 380.0 if t >= DAY_B else 400.0} for t in hours])
    for hour in hours:
        load(engine, hour_readings(hour), hour)


@pytest.fixture(scope="module")
def resources(warehouse, dbt_manifest):
    return {"dbt": dbt_cli(), "postgres": PostgresResource(url=warehouse.url)}


@pytest.fixture(scope="module")
def built(engine, resources):
    build_world(engine)
    assert materialize([dbt_models], resources=resources).success
    assert materialize(
        [dbt_incremental_models], resources=resources, tags=hourly_range_tags(DAY_A, DAY_B + timedelta(days=1))
    ).success
    assert materialize([dbt_derived_models], resources=resources).success
    return engine


def rows(engine, query: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(query), {"f": FACILITY})]


def test_peak_shaving_and_load_shift_recommendations(built):
    recs = {r["kind"]: r for r in rows(built, "select * from marts.fct_recommendations where facility_id = :f")}
    peak = recs["peak_shaving"]
    # Threshold 85 % of 100 kW = 85 kW; the highest quarter drew 110 kW:
    # (110 − 85) kW × 15 USD/kW-month = 375 USD a month.
    assert float(peak["est_cost_saved"]) == 375.0
    assert peak["currency"] == "USD"
    assert peak["rank"] == 1
    # Energy above 85 kW, per day: 72 quarters at 90 kW (5 kW over) + 24 at 100 kW (15 over)
    # = (72 × 5 + 24 × 15) × 0.25 h = 180 kWh; day B's peak quarter adds 10 kW × 0.25 h.
    assert float(peak["est_kwh_shifted"]) == 362.5
    assert float(peak["est_kg_co2e_saved"]) == 0.0
    assert peak["window_end"] == DAY_B + timedelta(days=1)
    assert peak["window_start"] == DAY_B + timedelta(days=1) - timedelta(days=30)

    shift = recs["load_shift"]
    # EV charging (18:00–24:00, 10 kW) sits in the top-quartile price hours (≥ 37.625):
    # 60 kWh a day moves to 00:00–06:00 (≤ 25.875); top minus bottom averages 18 USD/MWh
    # on both days (40.5 − 22.5, 41 − 23): 2 × 60 kWh × 18 / 1000 = 2.16 USD. Same
    # intensity all day: no carbon effect.
    assert float(shift["est_kwh_shifted"]) == 120.0
    assert float(shift["est_kwh_saved"]) == 0.0
    assert float(shift["est_cost_saved"]) == pytest.approx(2.16)
    assert float(shift["est_kg_co2e_saved"]) == 0.0
    assert shift["rank"] == 2
    assert "120.0 kWh" in shift["rationale"]

    # M1 runs at 0.85 for a quarter of its energy: energy-weighted pf ≈ 0.925 < 0.95.
    assert recs["power_factor_correction"]["rank"] == 3
    assert set(recs) == {"peak_shaving", "load_shift", "power_factor_correction"}


def test_share_of_energy_in_top_decile_price_hours(built):
    (impact,) = rows(built, "select * from marts.fct_grid_impact where facility_id = :f")
    assert impact["hours"] == 48
    # Per day 18 h × 90 kWh + 6 h × 100 kWh = 2220 kWh; day B's peak adds 2.5 kWh.
    assert impact["grid_energy_kwh"] == pytest.approx(4442.5)
    # The zone's 48 prices sorted are 20, 20.5, …, 43.5; percentile_cont(0.9) sits at
    # 0.9 × 47 = 42.3 → 41 + 0.3 × 0.5 = 41.15. Hours at or above it: B 21:00 (41.5),
    # A 22:00, B 22:00, A 23:00, B 23:00, each 100 kWh of grid energy.
    assert impact["price_p90_per_mwh"] == pytest.approx(41.15)
    assert impact["share_energy_top_decile_price_hours"] == pytest.approx(500 / 4442.5)
    assert impact["avg_zone_price_per_mwh"] == pytest.approx(31.75)
    # The EV load follows the evening price: positively correlated, 48 hours ≥ 24.
    assert 0 < impact["corr_load_price"] < 1
    # Intensity 400 on day A and 380 on day B: the p90 is 400, the top hours all of day A.
    assert impact["share_energy_top_decile_carbon_hours"] == pytest.approx(2220 / 4442.5)
    assert impact["avg_zone_intensity_kg_per_kwh"] == pytest.approx(0.39)


def test_sustainability_score_follows_the_formula(built):
    (score,) = rows(built, "select * from marts.fct_sustainability_score where facility_id = :f")
    # Renewable share: PV 2 × 160 kWh of 2 × 2380 + 2.5 kWh in all.
    renewable_share = 320 / 4762.5
    # kg CO2e per kWh, location-based: grid at the zone's intensity, solar at 0.041 (seed).
    previous = (2220 * 0.400 + 160 * 0.041) / 2380  # day A, in the 23 days before the last 7
    recent = (2222.5 * 0.380 + 160 * 0.041) / 2382.5  # day B
    trend_pct = 100 * (recent / previous - 1)  # ≈ −4.96 %: between −10 and +10
    # Power quality: 3 meters × 192 quarters; M1's 48 quarters at pf 0.85 and its 260 V
    # quarter (13 % above its 230 V median) fail.
    pq_share = (576 - 49) / 576

    assert score["renewable_share"] == pytest.approx(renewable_share)
    assert score["carbon_intensity_trend_pct"] == pytest.approx(trend_pct)
    assert score["carbon_trend_points"] == pytest.approx(25 * (10 - trend_pct) / 20)
    assert score["budget_points"] == 12.5  # no budget for INS-F1 in the seed
    assert score["power_quality_share"] == pytest.approx(pq_share)
    expected = 30 * renewable_share + 25 * (10 - trend_pct) / 20 + 12.5 + 20 * pq_share
    assert float(score["score"]) == round(expected, 1) == 51.5
    assert score["grade"] == "C"
    assert score["notes"] == "no carbon budget in progress: 12.5 of 25 points"
