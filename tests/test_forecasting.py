"""Load forecasts as an operator checks them: a series with a known daily shape and
temperature slope comes back within tolerance; the asset, run on the simulator's
facilities in a real warehouse, writes 48 hours per facility with ordered intervals,
scores its backtest, records why a facility with too little history was skipped, and a
rerun replaces the forecast exactly."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import materialize

from assets.forecast_model import FacilityJob, ModelSpec, forecast_facility, quiet_logs
from assets.forecasting import load_forecast
from resources.postgres import PostgresResource
from tests.conftest import FLEET_END, FLEET_START, failure_text, undocumented_columns

# --- the model on a series whose truth is known -------------------------------------

SLOPE_KW_PER_C = 3.0
TIMEZONE = "America/New_York"
# Four weeks of history across the end of US daylight saving time (2025-11-02), so the
# 08:00–18:00 occupancy shape moves by an hour in UTC part-way through.
AS_OF = pd.Timestamp("2025-11-04 05:00", tz="UTC")  # midnight in New York: Tuesday and Wednesday ahead
HISTORY_START = AS_OF - pd.Timedelta(days=28)


def true_load(hours: pd.DatetimeIndex, temperature: np.ndarray) -> np.ndarray:
    """60 kW base, 80 kW more on weekdays 08:00–18:00 local, 3 kW per °C."""
    local = hours.tz_convert(TIMEZONE)
    occupied = (local.day_of_week < 5) & (local.hour >= 8) & (local.hour < 18)
    return 60.0 + 80.0 * occupied + SLOPE_KW_PER_C * temperature


def synthetic_frame(warmer_ahead_c: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """History (with 2 kW of noise) and 48 forecast hours of weather; the noiseless truth
    of the forecast hours."""
    hours = pd.date_range(HISTORY_START, AS_OF + pd.Timedelta(hours=48), freq="h", inclusive="left")
    ahead = np.asarray(hours >= AS_OF)
    temperature = weather(hours, HISTORY_START) + warmer_ahead_c * ahead
    truth = true_load(hours, temperature)
    noisy = truth + np.random.default_rng(3).normal(0.0, 2.0, len(hours))
    return history_frame(hours, noisy, temperature), truth[ahead]


def weather(hours: pd.DatetimeIndex, start: pd.Timestamp) -> np.ndarray:
    """A daily swing plus multi-day fronts, so the slope is not the daily shape in disguise."""
    days = (hours - start) / pd.Timedelta(days=1)
    local_hour = hours.tz_convert(TIMEZONE).hour.to_numpy()
    return 12.0 + 5.0 * np.cos(2 * np.pi * (local_hour - 15) / 24) + 6.0 * np.sin(2 * np.pi * days.to_numpy() / 9.3)


def history_frame(hours: pd.DatetimeIndex, measured: np.ndarray, temperature: np.ndarray) -> pd.DataFrame:
    """What the forecast asset reads: measured load before AS_OF, weather throughout."""
    ahead = np.asarray(hours >= AS_OF)
    local_hour = hours.tz_convert(TIMEZONE).hour.to_numpy()
    return pd.DataFrame({
        "hour_start": hours,
        "avg_kw": np.where(ahead, np.nan, measured),
        "data_completeness": np.where(ahead, np.nan, 1.0),
        "temperature_c": temperature,
        "shortwave_radiation_w_m2": np.clip(800 * np.sin(np.pi * (local_hour - 6) / 12), 0, None),
        "is_forecast": ahead,
    })


def test_known_daily_shape_and_temperature_slope_are_forecast():
    quiet_logs()
    frame, truth = synthetic_frame()
    result = forecast_facility(FacilityJob("SYN-1", TIMEZONE, frame, AS_OF, plot=False), ModelSpec())
    assert result.status == "forecast", result.reason
    forecast = result.forecast
    assert len(forecast) == 48 and forecast.hour_start.iloc[0] == AS_OF
    # Tolerance: mean absolute error within 3 % of the mean load. A model on UTC hours
    # would put the 80 kW steps an hour off for most of the history and miss it.
    error = np.abs(forecast.yhat.to_numpy() - truth)
    assert error.mean() <= 0.03 * truth.mean(), f"MAE {error.mean():.2f} kW on a mean of {truth.mean():.1f} kW"
    assert np.mean((truth >= forecast.lower_95) & (truth <= forecast.upper_95)) >= 0.9
    assert result.scores["daily_seasonality"] == "weekday/weekend"
    assert result.scores["cv_rmse_pct"] < 5 and abs(result.scores["nmbe_pct"]) < 2
    assert result.scores["mae_improvement_pct"] > 20  # the fronts fool last week's load

    # The same history with a forecast 5 °C warmer: the model must follow the weather
    # forecast by the slope it learnt, 3 kW/°C.
    warmer, _ = synthetic_frame(warmer_ahead_c=5.0)
    hotter = forecast_facility(FacilityJob("SYN-1", TIMEZONE, warmer, AS_OF, plot=False), ModelSpec())
    shift = (hotter.forecast.yhat - forecast.yhat).mean()
    assert shift == pytest.approx(5.0 * SLOPE_KW_PER_C, rel=0.2)


def noisy_week_ahead(history_days: int, seed: int, noise_kw: float) -> tuple[pd.DataFrame, np.ndarray]:
    """`history_days` of the known load with Gaussian noise of `noise_kw`, and the week
    after AS_OF as it will be measured (with the same noise): the hours a user checks
    the intervals against."""
    # An hour more: the night clocks go back repeats a wall-clock hour, which counts once.
    start = AS_OF - pd.Timedelta(days=history_days, hours=1)
    hours = pd.date_range(start, AS_OF + pd.Timedelta(days=7), freq="h", inclusive="left")
    temperature = weather(hours, start)
    measured = true_load(hours, temperature) + np.random.default_rng(seed).normal(0.0, noise_kw, len(hours))
    return history_frame(hours, measured, temperature), measured[np.asarray(hours >= AS_OF)]


@pytest.mark.parametrize("history_days", [14, 56])
def test_intervals_hold_their_stated_coverage_with_two_weeks_as_with_eight(history_days):
    """Prophet's own intervals held 69 % / 88 % of the next week's hours with 14 days of
    history and 73 % / 92 % with 8 weeks. The coverage is pooled over six noise draws
    (~1,000 hours) and a whole week ahead, the span the backtest calibrates on."""
    quiet_logs()
    spec = ModelSpec(horizon_hours=7 * 24)
    inside_80 = inside_95 = hours = 0
    for seed in range(6):
        frame, measured = noisy_week_ahead(history_days, seed, noise_kw=6.0)
        result = forecast_facility(FacilityJob("SYN-3", TIMEZONE, frame, AS_OF, plot=False), spec)
        assert result.status == "forecast", result.reason
        forecast = result.forecast
        assert (forecast.lower_95 <= forecast.lower_80).all() and (forecast.upper_80 <= forecast.upper_95).all()
        inside_80 += int(((measured >= forecast.lower_80) & (measured <= forecast.upper_80)).sum())
        inside_95 += int(((measured >= forecast.lower_95) & (measured <= forecast.upper_95)).sum())
        hours += len(measured)
        # What the backtest reports is the same calibration scored on its held-out week.
        assert 65 <= result.scores["coverage_80_pct"] <= 95 and result.scores["coverage_95_pct"] >= 85
    assert 0.75 <= inside_80 / hours <= 0.87, f"80 % interval held {inside_80 / hours:.1%} of {hours} hours"
    assert 0.91 <= inside_95 / hours <= 0.99, f"95 % interval held {inside_95 / hours:.1%} of {hours} hours"


def test_too_little_history_is_a_skip_with_its_reason():
    frame, _ = synthetic_frame()
    short = frame[frame.hour_start >= AS_OF - pd.Timedelta(days=10)]
    result = forecast_facility(FacilityJob("SYN-2", TIMEZONE, short, AS_OF), ModelSpec())
    assert result.status == "skipped" and result.forecast is None
    assert result.reason.startswith("10.0 days of complete load with weather") and "needs 14" in result.reason


# --- the asset on the simulator's facilities ----------------------------------------

START, END = FLEET_START, FLEET_END


@pytest.fixture(scope="module")
def fleet(simulated_fleet):
    return simulated_fleet


def run_forecast(database, raise_on_error=True, **config):
    return materialize(
        [load_forecast],
        resources={"postgres": PostgresResource(url=database.url)},
        run_config={"ops": {"load_forecast": {"config": config}}},
        raise_on_error=raise_on_error,
    )


def forecast_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text("select * from marts.fct_load_forecast order by facility_id, interval_start")).mappings().all()


def backtest_rows(engine, as_of) -> dict:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select * from marts.fct_load_forecast_backtest where trained_through = :t order by facility_id"), {"t": as_of}
        ).mappings().all()
    return {row["facility_id"]: row for row in rows}


def test_short_history_is_skipped_with_the_reason_recorded(fleet):
    database, engine = fleet
    as_of = START + timedelta(days=10)
    result = run_forecast(database, as_of=as_of.isoformat())
    assert result.success
    scores = backtest_rows(engine, as_of)
    assert sorted(scores) == ["FAC-0001", "FAC-0002"]
    for row in scores.values():
        assert row["status"] == "skipped"
        assert "days of complete load with weather" in row["reason"] and "needs 14" in row["reason"]
        assert row["history_days"] <= 10
    assert forecast_rows(engine) == []
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert metadata["marts/fct_load_forecast"]["facilities_skipped"].value == 2
    assert "FAC-0001" in metadata["marts/fct_load_forecast"]["skip_reasons"].value
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    # Too little history is not a failure of the model.
    assert checks["every_facility_modelled"].passed


def test_forecast_has_48_ordered_hours_per_facility_and_a_scored_backtest(fleet):
    database, engine = fleet
    result = run_forecast(database, as_of=END.isoformat())
    assert result.success
    rows = forecast_rows(engine)
    by_facility = {}
    for row in rows:
        by_facility.setdefault(row["facility_id"], []).append(row)
    assert sorted(by_facility) == ["FAC-0001", "FAC-0002"]
    for facility_rows in by_facility.values():
        assert [r["interval_start"] for r in facility_rows] == [END + timedelta(hours=h) for h in range(48)]
        for r in facility_rows:
            assert r["interval_end"] - r["interval_start"] == timedelta(hours=1)
            assert 0 <= r["yhat_lower_95_kw"] <= r["yhat_lower_80_kw"] <= r["yhat_kw"] <= r["yhat_upper_80_kw"] <= r["yhat_upper_95_kw"]
            assert r["trained_through"] == END
            # The forecast hours are in the past of the real clock: observed weather.
            assert r["temperature_source"] == "observed"
    scores = backtest_rows(engine, END)
    # A backtest row per facility: the checks below must have rows to hold on.
    assert sorted(scores) == ["FAC-0001", "FAC-0002"]
    for facility_id, row in scores.items():
        assert row["status"] == "forecast" and row["reason"] is None
        assert row["test_hours"] >= 7 * 24 - 2  # a DST night can repeat or lose an hour
        assert row["cv_rmse_pct"] < 30 and abs(row["nmbe_pct"]) < 10 and row["within_ashrae_limits"]
        assert 50 <= row["coverage_80_pct"] <= 100
        # The forecast's mean is the facility's usual level: within a fifth of the held-out week's.
        with engine.connect() as conn:
            recent = conn.scalar(sa.text(
                "select avg(avg_kw) from marts.fct_load_hourly where facility_id = :f and hour_start >= :s and hour_start < :e"
            ), {"f": facility_id, "s": END - timedelta(days=7), "e": END})
        mean_forecast = np.mean([r["yhat_kw"] for r in by_facility[facility_id]])
        assert mean_forecast == pytest.approx(recent, rel=0.2)
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert metadata["marts/fct_load_forecast"]["plots"].value.count("data:image/png;base64,") == 2
    assert "| FAC-0001 | forecast |" in metadata["marts/fct_load_forecast_backtest"]["scores"].value
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["accuracy_within_ashrae_guideline_14"].passed and checks["every_facility_modelled"].passed


def test_rerun_replaces_the_forecast_exactly(fleet):
    database, engine = fleet
    assert run_forecast(database, as_of=END.isoformat()).success
    first = forecast_rows(engine)
    assert run_forecast(database, as_of=END.isoformat()).success
    again = forecast_rows(engine)
    def key(r):
        return r["facility_id"], r["interval_start"]
    assert [key(r) for r in again] == [key(r) for r in first]
    assert all(b["created_at"] > a["created_at"] for a, b in zip(first, again, strict=True))
    assert all(row["warm_started"] for row in backtest_rows(engine, END).values())

    # An hour later: exactly the 48 hours from the new origin, none of the old run's left.
    later = END + timedelta(hours=1)
    assert run_forecast(database, as_of=later.isoformat()).success
    rows = forecast_rows(engine)
    assert len(rows) == 2 * 48
    assert {r["trained_through"] for r in rows} == {later}
    assert min(r["interval_start"] for r in rows) == later
    assert max(r["interval_start"] for r in rows) == later + timedelta(hours=47)
    # The backtests of both origins are kept, one row per facility each.
    assert len(backtest_rows(engine, END)) == 2 and len(backtest_rows(engine, later)) == 2


def test_every_forecast_column_is_described(fleet):
    _, engine = fleet
    for table in ("marts.fct_load_forecast", "marts.fct_load_forecast_backtest"):
        assert undocumented_columns(engine, table) == [], table


def test_an_origin_off_the_hour_is_refused_in_words(fleet):
    database, _ = fleet
    result = run_forecast(database, raise_on_error=False, as_of="2026-04-03T10:30:00+00:00")
    assert not result.success
    assert "as_of: the model forecasts whole hours" in failure_text(result)
    result = run_forecast(database, raise_on_error=False, as_of="2026-04-03T10:00:00")
    assert "give the time zone" in failure_text(result)
