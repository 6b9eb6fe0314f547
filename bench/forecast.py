"""Load forecasts for a fleet through the asset code path: speed and accuracy.

Fills a fresh database the real way (the simulator's facilities, --days of meter
readings every --interval-s seconds, through the code location's jobs), then
materialises the `load_forecast` asset twice, as production runs it every hour:

- cold: from the hour before the end of the data, with no stored parameters;
- warm: from the end of the data, an hour of history later, each fit starting from the
  previous run's optima;

--repeats times (the stored parameters are dropped before each cold run). It prints
the median wall time of each kind of run (`dagster.materialize`, database reads and writes
included), the per-facility seconds, and the ratio to the limit measured in the same
run: a bare Prophet fit and 48-hour forecast of one facility's hourly load with
Prophet's defaults (no regressors, 1,000 samples). Then the backtest accuracy over the
fleet (hourly CV(RMSE), NMBE, MAE against the seasonal-naive baseline, the share of
held-out hours inside the 80 % and 95 % intervals, cross-conformal over the held-out week)
and, for a sample of facilities, the interval coverage of the next 48 hours after an
origin two days before the end of the data, with 15 days of history (the demo's) and
with 8 weeks: the intervals are calibrated on the backtest's errors, so both should hold
about 80 % and 95 %.

Goal: ≤ 30 s wall for 100 facilities × 60 days on 2 cores; median CV(RMSE) ≤ 30 %,
|NMBE| ≤ 10 %, MAE ≥ 20 % better than seasonal-naive, 80 % interval covering 70–90 %.
"""

import argparse
import os
import statistics
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from _report import report

GOAL_WALL_S = 30.0
HISTORY_DAYS = (15, 56)


def main() -> None:
    # Here, not at the top: the forecast's worker processes start by importing this
    # script (spawn), and need none of it.
    from bench_support import (
        fill,
        fleet_arguments,
        fresh_database,
        isolate,
        p95,
        simulator,
    )

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fleet_arguments(parser, facilities=100, days=60)
    parser.add_argument("--repeats", type=int, default=3, help="cold + warm run pairs; the figures are medians")
    parser.add_argument("--bare-series", type=int, default=5, help="facilities the bare Prophet fit is timed on")
    parser.add_argument("--coverage-series", type=int, default=10, help="facilities the coverage-by-history check runs on")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.days < 15:
        parser.error("--days must be at least 15: the model needs 14 days and the warm run one hour more")

    isolate()

    with simulator(args.facilities, args.interval_s) as url, fresh_database() as database:
        filled = fill(database, url, args.days, "forecast")
        print(
            f"filled {args.facilities} facilities × {args.days} days ({args.interval_s} s readings): "
            f"{filled['readings']:,} readings in {filled['seconds']['total']:.0f} s",
            flush=True,
        )
        end = filled["end"]
        log_path = Path(os.environ["WATTLINE_HOME"]) / "logs" / "bench-forecast-runs.log"
        cold, warm = [], []
        for _ in range(args.repeats):
            forget_parameters(database)
            cold.append(forecast_run(end - timedelta(hours=1), log_path))
            warm.append(forecast_run(end, log_path))
        scores = backtest_rows(database, end - timedelta(hours=1))
        inputs = read_inputs(database, end)
        bare = bare_fit_seconds(inputs, end, args.bare_series)
        sweep = history_sweep(inputs, end, args.coverage_series)

    forecast = [s for s in scores if s["status"] == "forecast"]
    seconds = [s["fit_seconds"] for s in forecast]

    def median(runs, key):
        return statistics.median(run[key] for run in runs)

    hours = sum(s["test_hours"] for s in forecast)
    figures = {
        "facilities": args.facilities,
        "days": args.days,
        "interval_s": args.interval_s,
        "readings": filled["readings"],
        "fill_seconds": round(filled["seconds"]["total"], 1),
        "workers": cold[0]["workers"],
        "repeats": args.repeats,
        "wall_s": round(median(cold, "wall_s"), 2),
        "warm_wall_s": round(median(warm, "wall_s"), 2),
        "modelling_s": round(median(cold, "modelling_s"), 2),
        "warm_modelling_s": round(median(warm, "modelling_s"), 2),
        "median_series_s": round(statistics.median(seconds), 3),
        "p95_series_s": round(p95(seconds), 3),
        "bare_fit_s": round(bare, 3),
        "series_vs_bare_fit": round(statistics.median(seconds) / bare, 2),
        "wall_vs_bare_fits_in_series": round(median(cold, "wall_s") / (bare * len(forecast)), 3),
        "forecast": len(forecast),
        "skipped": sum(1 for s in scores if s["status"] == "skipped"),
        "failed": sum(1 for s in scores if s["status"] == "failed"),
        "median_cv_rmse": round(statistics.median(s["cv_rmse_pct"] for s in forecast), 2),
        "median_abs_nmbe": round(statistics.median(abs(s["nmbe_pct"]) for s in forecast), 2),
        "mae_improvement_vs_naive": round(statistics.median(s["mae_improvement_pct"] for s in forecast if s["mae_improvement_pct"] is not None), 2),
        "coverage_80": round(sum(s["coverage_80_pct"] * s["test_hours"] for s in forecast) / hours, 2),
        "coverage_95": round(sum(s["coverage_95_pct"] * s["test_hours"] for s in forecast) / hours, 2),
        "within_ashrae_limits": sum(1 for s in forecast if s["within_ashrae_limits"]),
        "coverage_by_history": sweep,
        "goal_wall_s": GOAL_WALL_S,
    }
    figures["within_goal"] = (
        figures["wall_s"] <= GOAL_WALL_S and figures["median_cv_rmse"] <= 30 and figures["median_abs_nmbe"] <= 10
        and figures["mae_improvement_vs_naive"] >= 20 and 70 <= figures["coverage_80"] <= 90
    )
    print(
        f"\n{len(forecast)} facilities forecast in {figures['workers']} processes; medians of {args.repeats} runs each; "
        "per-facility times (the last cold run) include backtest, fit, forecast and plot"
    )
    rows = [
        ("wall, cold run (no stored parameters)", f"{figures['wall_s']:.1f} s  {'ok' if figures['wall_s'] <= GOAL_WALL_S else 'OVER'}"),
        ("wall, warm run (an hour later)", f"{figures['warm_wall_s']:.1f} s"),
        ("  of which modelling, cold / warm", f"{figures['modelling_s']:.1f} / {figures['warm_modelling_s']:.1f} s"),
        ("per facility, median / p95", f"{figures['median_series_s']:.2f} / {figures['p95_series_s']:.2f} s"),
        ("bare Prophet fit + 48 h forecast, one series (the limit)", f"{bare:.2f} s"),
        ("per facility / bare fit", f"{figures['series_vs_bare_fit']:.2f}×"),
        ("cold wall / bare fits one after another", f"{figures['wall_vs_bare_fits_in_series']:.2f}×"),
        ("median hourly CV(RMSE) (≤ 30 %)", f"{figures['median_cv_rmse']:.2f} %"),
        ("median |NMBE| (≤ 10 %)", f"{figures['median_abs_nmbe']:.2f} %"),
        ("median MAE gain over seasonal-naive (≥ 20 %)", f"{figures['mae_improvement_vs_naive']:.1f} %"),
        ("held-out hours inside the 80 % interval (70–90 %)", f"{figures['coverage_80']:.1f} %"),
        ("held-out hours inside the 95 % interval", f"{figures['coverage_95']:.1f} %"),
        ("facilities within ASHRAE Guideline 14", f"{figures['within_ashrae_limits']}/{len(forecast)}"),
    ]
    for entry in sweep:
        rows.append((
            f"{entry['history_days']:>2} days of history: next 48 h inside 80 % / 95 %",
            f"{entry['coverage_80']:.1f} / {entry['coverage_95']:.1f} % of {entry['hours']} h",
        ))
    report(rows, figures, args.json)


def forecast_run(as_of, log_path: Path) -> dict:
    """One materialisation of the forecast asset, as the job runs it (its logs to a file)."""
    from dagster import DagsterInstance, materialize

    from assets.forecasting import load_forecast
    from orchestration.backfill import run_output
    from orchestration.runs import QUIET_RUN_CONFIG
    from resources.postgres import PostgresResource

    with run_output(log_path):
        started = time.perf_counter()
        result = materialize(
            [load_forecast],
            resources={"postgres": PostgresResource()},
            instance=DagsterInstance.ephemeral(),
            run_config={"ops": {"load_forecast": {"config": {"as_of": as_of.isoformat()}}}, **QUIET_RUN_CONFIG},
            raise_on_error=False,
        )
        wall = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"the forecast run from {as_of} failed; see {log_path}")
    metadata = next(
        e.materialization.metadata for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "marts/fct_load_forecast"
    )
    print(
        f"forecast from {as_of:%Y-%m-%d %H:%M} UTC: {wall:.1f} s, {metadata['warm_started'].value} facilities warm-started",
        flush=True,
    )
    return {"wall_s": wall, "modelling_s": metadata["wall_seconds"].value, "workers": metadata["workers"].value}


def forget_parameters(database) -> None:
    """Drop what earlier runs stored, so the next run starts cold."""
    import sqlalchemy as sa

    engine = sa.create_engine(database.sqlalchemy_url)
    with engine.begin() as conn:
        if conn.scalar(sa.text("select to_regclass('ops.forecast_model_params')")) is not None:
            conn.execute(sa.text("truncate ops.forecast_model_params"))
    engine.dispose()


def backtest_rows(database, as_of) -> list[dict]:
    import sqlalchemy as sa

    engine = sa.create_engine(database.sqlalchemy_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select * from marts.fct_load_forecast_backtest where trained_through = :as_of"), {"as_of": as_of}
        ).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def read_inputs(database, end):
    """Each facility's (id, time zone, hourly inputs), read as the asset reads them (and
    the two days before its window, for the coverage check's earlier origin)."""
    import pandas as pd
    import psycopg2

    from assets.forecast_model import ModelSpec
    from resources.sql_files import statements

    spec, sql = ModelSpec(), statements("forecast_tables.sql")
    with psycopg2.connect(database.url) as conn, conn.cursor() as cur:
        cur.execute(sql["facilities"], {"facility_ids": None})
        facilities = dict(cur.fetchall())
        cur.execute(sql["inputs"], {
            "facility_ids": list(facilities),
            "start": end - timedelta(days=spec.history_days + 2),
            "end": end + timedelta(hours=spec.horizon_hours),
        })
        inputs = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    conn.close()
    return [(f, tz, inputs[inputs.facility_id == f].drop(columns="facility_id")) for f, tz in facilities.items()]


def bare_fit_seconds(inputs, end, count: int) -> float:
    """Median seconds of Prophet's defaults on one facility's hourly load: fit, then a
    48-hour forecast with intervals."""
    import pandas as pd

    from assets.forecast_model import quiet_logs

    quiet_logs()
    from prophet import Prophet
    timings = []
    for _, _, frame in inputs[:count]:
        history = frame[(frame.hour_start < end) & frame.avg_kw.notna()]
        data = pd.DataFrame({"ds": pd.to_datetime(history.hour_start, utc=True).dt.tz_localize(None), "y": history.avg_kw})
        started = time.perf_counter()
        model = Prophet().fit(data)
        model.predict(model.make_future_dataframe(periods=48, freq="h", include_history=False))
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def history_sweep(inputs, end, count: int) -> list[dict]:
    """For the first `count` facilities: forecasts from two days before the end of the
    data with each length of history in HISTORY_DAYS, and the share of the 48 measured
    hours after that origin inside their 80 % and 95 % intervals."""
    import dataclasses

    import pandas as pd

    from assets import forecast_model as fm

    fm.quiet_logs()
    origin = pd.Timestamp(end) - pd.Timedelta(hours=48)
    sweep = []
    for days in HISTORY_DAYS:
        spec = dataclasses.replace(fm.ModelSpec(), history_days=days)
        covered_80 = covered_95 = hours = 0
        for facility_id, timezone, frame in inputs[:count]:
            result = fm.forecast_facility(fm.FacilityJob(facility_id, timezone, frame, origin, plot=False), spec)
            if result.status != "forecast":
                continue
            measured = result.forecast[["hour_start"]].merge(
                fm.local_time(frame, timezone)[["hour_start", "avg_kw"]], on="hour_start", how="left"
            ).avg_kw.to_numpy()
            known = ~pd.isna(measured)
            forecast = result.forecast[known]
            actual = measured[known].astype(float)
            covered_80 += int(((actual >= forecast.lower_80) & (actual <= forecast.upper_80)).sum())
            covered_95 += int(((actual >= forecast.lower_95) & (actual <= forecast.upper_95)).sum())
            hours += int(known.sum())
        sweep.append({
            "history_days": days,
            "hours": hours,
            "coverage_80": round(100 * covered_80 / hours, 2) if hours else float("nan"),
            "coverage_95": round(100 * covered_95 / hours, 2) if hours else float("nan"),
        })
    return sweep


if __name__ == "__main__":
    main()
