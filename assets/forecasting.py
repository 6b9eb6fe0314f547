"""Load forecasts: `marts.fct_load_forecast` and its backtest, one Prophet model per facility."""

import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from assets.plots import markdown_image
from orchestration.conditions import hourly_after_inputs
from resources.postgres import PostgresResource
from resources.python_marts import as_json, column_schema, create_tables
from resources.sql_files import statements

FORECAST = AssetKey(["marts", "fct_load_forecast"])
BACKTEST = AssetKey(["marts", "fct_load_forecast_backtest"])
INPUTS = AssetKey(["intermediate", "int_facility_load_weather_hourly"])
FACILITIES = AssetKey(["marts", "dim_facility"])
SQL = "forecast_tables.sql"
OWNERS = ["team:energy-data"]


class ForecastConfig(Config):
    as_of: str | None = Field(
        default=None,
        description="Forecast from this UTC hour (ISO 8601, e.g. 2026-11-20T06:00Z) instead of the end of the latest complete hour in the marts.",
    )
    facility_ids: list[str] | None = Field(default=None, description="Only these facilities; default every active facility.")
    max_plots: int = Field(
        default=100, ge=0,
        description="Facilities whose forecast plot goes into the materialisation, worst backtest first (each is a ~20 KB PNG in the event log).",
    )


@multi_asset(
    name="load_forecast",
    specs=[
        AssetSpec(
            FORECAST,
            deps=[INPUTS, FACILITIES],
            group_name="forecasting",
            kinds={"prophet", "python", "postgres"},
            owners=OWNERS,
            automation_condition=hourly_after_inputs(),
            description=(
                "Each active facility's load for the next 48 hours, hour by hour, with 80 % and 95 % "
                "prediction intervals (`marts.fct_load_forecast`).\n\n"
                "One Prophet model per facility learns from the last 8 weeks of complete hourly load "
                "(`fct_load_hourly`) on the facility's wall clock: a daily shape (separate weekday and "
                "weekend shapes where they differ), a weekly shape, a trend, and cooling and heating "
                "degrees around 18.3 °C from the facility's temperature, observed for the past and from "
                "the weather forecast ahead. Facilities with under 14 days of usable history are "
                "skipped with the reason, not given a made-up forecast. Each run replaces the "
                "facility's rows; the materialisation shows each facility's last week and forecast."
            ),
        ),
        AssetSpec(
            BACKTEST,
            deps=[INPUTS],
            group_name="forecasting",
            kinds={"prophet", "python", "postgres"},
            owners=OWNERS,
            automation_condition=hourly_after_inputs(),
            description=(
                "How good each facility's forecast is (`marts.fct_load_forecast_backtest`): every run "
                "holds out the last 7 days, fits on the weeks before and scores the held-out hours "
                "(MAE, CV(RMSE), NMBE and interval coverage) against a seasonal-naive baseline, the "
                "same hour one week earlier. One row per facility and run, with the skip or failure "
                "reason of facilities the run did not forecast."
            ),
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            "accuracy_within_ashrae_guideline_14",
            asset=BACKTEST,
            description=(
                "Warns when a facility's backtest misses ASHRAE Guideline 14's limits for hourly "
                "models: CV(RMSE) above 30 % or NMBE beyond ±10 %."
            ),
        ),
        AssetCheckSpec(
            "every_facility_modelled",
            asset=FORECAST,
            description="Fails when a facility's model raised an error; skipped facilities (too little history) pass and are listed.",
        ),
    ],
)
def load_forecast(context: AssetExecutionContext, config: ForecastConfig, postgres: PostgresResource):
    """Backtest, fit and forecast every active facility's load, in parallel processes."""
    import pandas as pd

    from assets.forecast_model import ModelSpec

    spec = ModelSpec()
    sql = statements(SQL)
    create_tables(postgres, sql["create_tables"])
    as_of = _as_of(postgres, sql, config)
    facilities, frames, warm = _read_inputs(postgres, sql, spec, as_of, config.facility_ids)
    if not facilities:
        raise Failure("marts.dim_facility has no active facility to forecast" + (f" among {config.facility_ids}" if config.facility_ids else ""))
    context.log.info(f"forecasting {len(facilities)} facilities from {as_of:%Y-%m-%d %H:%M} UTC ({spec.version})")

    started = time.perf_counter()
    results, workers = _run_models(context, spec, facilities, frames, warm, pd.Timestamp(as_of))
    wall = time.perf_counter() - started
    created_at = datetime.now(UTC)
    forecast_rows, backtest_rows, params_rows = _rows(results, spec, as_of, created_at)
    _write(postgres, sql, list(facilities), as_of, forecast_rows, backtest_rows, params_rows)

    forecast = [r for r in results if r.status == "forecast"]
    skipped = [r for r in results if r.status == "skipped"]
    failed = [r for r in results if r.status == "failed"]
    for r in skipped:
        context.log.info(f"{r.facility_id} skipped: {r.reason}")
    for r in failed:
        context.log.error(f"{r.facility_id} failed: {r.reason}")
    seconds = sorted(r.seconds for r in forecast) or [0.0]
    run_figures = {
        "trained_through": MetadataValue.timestamp(as_of),
        "model_version": spec.version,
        "facilities_forecast": len(forecast),
        "facilities_skipped": len(skipped),
        "facilities_failed": len(failed),
    }
    yield MaterializeResult(
        asset_key=FORECAST,
        metadata={
            **run_figures,
            "dagster/row_count": len(forecast_rows),
            "dagster/column_schema": _column_schema(postgres, "marts.fct_load_forecast"),
            "horizon_end": MetadataValue.timestamp(as_of + timedelta(hours=spec.horizon_hours)),
            "wall_seconds": round(wall, 2),
            "workers": workers,
            "median_facility_seconds": round(statistics.median(seconds), 3),
            "warm_started": sum(1 for r in forecast if r.warm_started),
            "skip_reasons": MetadataValue.md(_reasons(skipped + failed)),
            "plots": MetadataValue.md(_plots(forecast, config.max_plots)),
        },
    )
    yield MaterializeResult(
        asset_key=BACKTEST,
        metadata={
            **run_figures,
            "dagster/row_count": len(backtest_rows),
            "dagster/column_schema": _column_schema(postgres, "marts.fct_load_forecast_backtest"),
            **_score_medians(forecast),
            "scores": MetadataValue.md(_score_table(results)),
        },
    )
    outside = [r for r in forecast if not _within_limits(r.scores)]
    yield AssetCheckResult(
        check_name="accuracy_within_ashrae_guideline_14",
        asset_key=BACKTEST,
        passed=not outside,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"All {len(forecast)} forecast facilities are within CV(RMSE) ≤ 30 % and |NMBE| ≤ 10 % on the held-out week."
            if not outside else
            f"{len(outside)} of {len(forecast)} facilities miss the limits on the held-out week; their forecasts are less "
            "trustworthy than ASHRAE Guideline 14 asks of an hourly model: "
            + "; ".join(f"{r.facility_id} CV(RMSE) {r.scores['cv_rmse_pct']} %, NMBE {r.scores['nmbe_pct']} %" for r in outside[:20])
        ),
        metadata={"facilities_outside_limits": len(outside), "facilities_scored": len(forecast)},
    )
    yield AssetCheckResult(
        check_name="every_facility_modelled",
        asset_key=FORECAST,
        passed=not failed,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{len(forecast)} facilities forecast, {len(skipped)} skipped for too little history."
            if not failed else
            f"The model raised for {len(failed)} facilities, which have no forecast now: "
            + "; ".join(f"{r.facility_id}: {r.reason}" for r in failed[:10])
        ),
        metadata={"failed": len(failed), "skipped": len(skipped), "forecast": len(forecast)},
    )


def _as_of(postgres: PostgresResource, sql: dict[str, str], config: ForecastConfig) -> datetime:
    if config.as_of:
        try:
            as_of = datetime.fromisoformat(config.as_of)
        except ValueError as error:
            raise Failure(f"as_of: expected an ISO 8601 timestamp like 2026-11-20T06:00Z, got {config.as_of!r}") from error
        if as_of.tzinfo is None:
            raise Failure(f"as_of: give the time zone (e.g. {config.as_of}Z for UTC), got {config.as_of!r}")
        if as_of != as_of.replace(minute=0, second=0, microsecond=0):
            raise Failure(f"as_of: the model forecasts whole hours; give the start of an hour, got {config.as_of!r}")
        return as_of.astimezone(UTC)
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["latest_complete_hour"])
        latest = cur.fetchone()[0]
    if latest is None:
        raise Failure("marts.fct_load_hourly holds no complete hour yet: load telemetry and build the marts first (incremental_marts_job)")
    return latest.astimezone(UTC)


def _read_inputs(postgres, sql, spec, as_of: datetime, facility_ids: list[str] | None):
    """Active facilities (id → timezone), their hourly inputs and the parameters a
    previous run of the same model left, if its history ended no later than this one's."""
    import pandas as pd

    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["facilities"], {"facility_ids": facility_ids})
        facilities = dict(cur.fetchall())
        ids = list(facilities)
        cur.execute(sql["inputs"], {
            "facility_ids": ids,
            "start": as_of - timedelta(days=spec.history_days),
            "end": as_of + timedelta(hours=spec.horizon_hours),
        })
        columns = [d.name for d in cur.description]
        inputs = pd.DataFrame(cur.fetchall(), columns=columns)
        cur.execute(sql["model_params"], {"model_version": spec.version, "facility_ids": ids, "as_of": as_of})
        warm = dict(cur.fetchall())
    frames = {facility_id: frame.drop(columns="facility_id") for facility_id, frame in inputs.groupby("facility_id")}
    empty = pd.DataFrame(columns=[c for c in columns if c != "facility_id"])
    return facilities, {f: frames.get(f, empty) for f in ids}, warm


def forecast_workers() -> int:
    """Processes to fit in: WATTLINE_FORECAST_WORKERS, else every core this process may use."""
    from orchestration.settings import get_settings

    configured = get_settings().forecast_workers
    return configured or len(os.sched_getaffinity(0))


def _run_models(context, spec, facilities: dict[str, str], frames, warm, as_of):
    """Each facility's model in a pool of processes (Prophet fits are CPU-bound and hold
    the GIL); a single facility or worker runs here, without a pool to start."""
    import multiprocessing

    from assets.forecast_model import FacilityJob, forecast_facility, quiet_logs

    jobs = [
        FacilityJob(facility_id, timezone, frames[facility_id], as_of, warm.get(facility_id))
        for facility_id, timezone in facilities.items()
    ]
    workers = min(forecast_workers(), len(jobs))
    if workers <= 1:
        quiet_logs()
        return [forecast_facility(job, spec) for job in jobs], 1
    results = []
    # spawn, not fork: the run worker has threads (Dagster's, the database pool's), and a
    # forked child could inherit a lock one of them held.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=quiet_logs) as pool:
        futures = [pool.submit(forecast_facility, job, spec) for job in jobs]
        step = max(1, len(jobs) // 10)
        for done, future in enumerate(as_completed(futures), start=1):
            results.append(future.result())
            if done % step == 0 or done == len(jobs):
                context.log.info(f"{done}/{len(jobs)} facilities modelled")
    results.sort(key=lambda r: r.facility_id)
    return results, workers


def _rows(results, spec, as_of: datetime, created_at: datetime):
    forecast_rows, backtest_rows, params_rows = [], [], []
    for r in results:
        scores = r.scores
        backtest_rows.append({
            "facility_id": r.facility_id,
            "trained_through": as_of,
            "status": r.status,
            "reason": r.reason,
            **{k: scores.get(k) for k in (
                "history_days", "daily_seasonality", "test_hours", "scored_hours", "mae_kw", "rmse_kw", "cv_rmse_pct",
                "nmbe_pct", "naive_mae_kw", "naive_rmse_kw", "naive_cv_rmse_pct", "naive_nmbe_pct",
                "mae_improvement_pct", "coverage_80_pct", "coverage_95_pct", "future_temperature_filled_hours",
            )},
            "within_ashrae_limits": _within_limits(scores) if r.status == "forecast" else None,
            "warm_started": r.warm_started,
            "fit_seconds": round(r.seconds, 3),
            "model_version": spec.version,
            "created_at": created_at,
        })
        if r.status != "forecast":
            continue
        params_rows.append({"facility_id": r.facility_id, "model_version": spec.version, "trained_through": as_of, "params": r.params})
        for row in r.forecast.itertuples():
            start = row.hour_start.to_pydatetime()
            forecast_rows.append({
                "facility_id": r.facility_id,
                "interval_start": start,
                "interval_end": start + timedelta(hours=1),
                "yhat_kw": round(float(row.yhat), 4),
                "yhat_lower_80_kw": round(float(row.lower_80), 4),
                "yhat_upper_80_kw": round(float(row.upper_80), 4),
                "yhat_lower_95_kw": round(float(row.lower_95), 4),
                "yhat_upper_95_kw": round(float(row.upper_95), 4),
                "temperature_c": round(float(row.temperature_c), 2),
                "temperature_source": row.temperature_source,
                "model_version": spec.version,
                "trained_through": as_of,
                "created_at": created_at,
            })
    return forecast_rows, backtest_rows, params_rows


def _write(postgres, sql, facility_ids, as_of, forecast_rows, backtest_rows, params_rows) -> None:
    """Every facility of the run is replaced in one transaction: a reader sees the previous
    run's forecast or this one's, never a mix, and a facility this run did not forecast
    keeps no stale rows."""

    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        # Two runs at once would interleave their deletes and inserts.
        cur.execute("select pg_advisory_xact_lock(hashtext('marts.fct_load_forecast'))")
        cur.execute(sql["replace_forecast"], {"facility_ids": facility_ids, "rows": as_json(forecast_rows)})
        cur.execute(sql["replace_backtest"], {"facility_ids": facility_ids, "as_of": as_of, "rows": as_json(backtest_rows)})
        if params_rows:
            cur.execute(sql["store_params"], {"rows": as_json(params_rows)})


def _column_schema(postgres, table: str):
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        return column_schema(cur, table)


def _within_limits(scores: dict) -> bool:
    from assets.forecast_model import ASHRAE_CV_RMSE_PCT, ASHRAE_NMBE_PCT

    cv, nmbe = scores.get("cv_rmse_pct"), scores.get("nmbe_pct")
    return cv is not None and nmbe is not None and cv <= ASHRAE_CV_RMSE_PCT and abs(nmbe) <= ASHRAE_NMBE_PCT


def _score_medians(forecast) -> dict:
    def median(key, transform=lambda v: v):
        values = [transform(r.scores[key]) for r in forecast if r.scores.get(key) is not None]
        return round(statistics.median(values), 2) if values else "none"

    return {
        "median_cv_rmse_pct": median("cv_rmse_pct"),
        "median_abs_nmbe_pct": median("nmbe_pct", abs),
        "median_mae_improvement_vs_naive_pct": median("mae_improvement_pct"),
        "median_coverage_80_pct": median("coverage_80_pct"),
        "median_coverage_95_pct": median("coverage_95_pct"),
    }


def _score_table(results) -> str:
    """Every facility, worst CV(RMSE) first, then the skipped and failed."""
    def fmt(value, suffix=""):
        return "–" if value is None else f"{value:g}{suffix}"

    order = sorted(results, key=lambda r: (r.status != "forecast", -(r.scores.get("cv_rmse_pct") or 0), r.facility_id))
    lines = [
        "| facility | status | CV(RMSE) | NMBE | MAE kW | naive MAE kW | vs naive | 80 % cover | 95 % cover | daily shape |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in order:
        s = r.scores
        lines.append(
            f"| {r.facility_id} | {r.status} | {fmt(s.get('cv_rmse_pct'), ' %')} | {fmt(s.get('nmbe_pct'), ' %')} | "
            f"{fmt(s.get('mae_kw'))} | {fmt(s.get('naive_mae_kw'))} | {fmt(s.get('mae_improvement_pct'), ' %')} | "
            f"{fmt(s.get('coverage_80_pct'), ' %')} | {fmt(s.get('coverage_95_pct'), ' %')} | {s.get('daily_seasonality') or r.reason or ''} |"
        )
    return "\n".join(lines)


def _reasons(results) -> str:
    if not results:
        return "Every facility was forecast."
    return "\n".join(f"- **{r.facility_id}** ({r.status}): {r.reason}" for r in results)


def _plots(forecast, limit: int) -> str:
    if not forecast or limit == 0:
        return "No forecast to plot." if not forecast else "Plots are off for this run (max_plots = 0)."
    order = sorted(forecast, key=lambda r: -(r.scores.get("cv_rmse_pct") or 0))[:limit]
    parts = []
    if len(forecast) > limit:
        parts.append(f"The {limit} facilities with the highest backtest CV(RMSE) of {len(forecast)}; every forecast is in `marts.fct_load_forecast`.\n")
    for r in order:
        if r.plot_png:
            parts.append(markdown_image(r.facility_id, r.plot_png))
    return "\n".join(parts)
