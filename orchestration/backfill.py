"""Loading and modelling a range of hours through the asset graph, as `wattline demo`,
`wattline backfill` and the benchmarks do: the registry, telemetry one run per day,
weather and grid one run per UTC day, then the dbt models, with progress lines."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from pathlib import Path

from orchestration.progress import Steps


def backfill_window(days: int, now: datetime) -> tuple[datetime, datetime]:
    """The last `days` days up to and including the open hour."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - timedelta(days=days), end


def day_ranges(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    ranges = []
    cursor = start
    while cursor < end:
        upper = min(cursor + timedelta(days=1), end)
        ranges.append((cursor, upper))
        cursor = upper
    return ranges


def utc_days(start: datetime, end: datetime) -> list[datetime]:
    """The UTC days [start, end) touches."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    while day < end:
        days.append(day)
        day += timedelta(days=1)
    return days


def backfill(instance, start: datetime, end: datetime, steps: Steps, log_path: Path, registry: bool = False) -> None:
    """Load and model [start, end) through the asset graph, as three progress steps:
    telemetry one run per day (after the registry, if asked), weather and grid one run
    per UTC day, then the dbt models (staging and dimensions, and the marts for the whole
    range in one run). Each run is recorded in `instance`; a failed run raises, naming it."""
    from orchestration.runs import run_job

    def run(job: str, **bounds):
        result = run_job(job, instance, **bounds)
        if not result.success:
            raise RuntimeError(f"{job} {bounds or ''} failed (run {result.run_id}); see {log_path} and the run in the UI")
        return result

    with steps.step(f"Loading telemetry {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"), run_output(log_path):
        if registry:
            result = run("registry_job")
            steps.detail(f"registry: {run_metadata(result, 'active', asset='raw/meters')} active meters (run {result.run_id[:8]})")
        for lower, upper in day_ranges(start, end):
            result = run("telemetry_job", start=lower, end=upper)
            loaded = run_metadata(result, "rows_loaded_in_run")
            rejected = run_metadata(result, "rows_rejected")
            steps.detail(f"{lower:%Y-%m-%d %H:%M} – {upper:%Y-%m-%d %H:%M}: {loaded:,} readings, {rejected:,} quarantined (run {result.run_id[:8]})")
    with steps.step("Loading weather, grid prices and carbon intensity, day by day"), run_output(log_path):
        for day in utc_days(start, end):
            result = run("grid_and_weather_job", partition_key=f"{day:%Y-%m-%d}")
            counts = {
                name: run_metadata(result, "dagster/row_count", asset=f"raw/{name}")
                for name in ("weather_hourly", "grid_prices", "grid_carbon_intensity")
            }
            steps.detail(
                f"{day:%Y-%m-%d}: {counts['weather_hourly']:,} weather hours, {counts['grid_prices']:,} prices, "
                f"{counts['grid_carbon_intensity']:,} carbon-intensity hours (run {result.run_id[:8]})"
            )
    with steps.step("Building the dbt models (staging views, then the marts for the whole range)"), run_output(log_path):
        for job in ("unpartitioned_models_job", "incremental_marts_job"):
            bounds = {} if job == "unpartitioned_models_job" else {"start": start, "end": end}
            result = run(job, **bounds)
            checks = result.get_asset_check_evaluations()
            passed = sum(1 for c in checks if c.passed)
            models = {event.asset_key for event in result.get_asset_materialization_events()}
            steps.detail(f"{job}: {len(models)} models, {passed}/{len(checks)} checks passed (run {result.run_id[:8]})")


@contextlib.contextmanager
def run_output(path: Path):
    """Send what runs print (dbt's event stream, Dagster's debug logs) to a file: the
    terminal keeps the progress lines, the UI and the file keep the detail."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    dagster_logger = logging.getLogger("dagster")
    propagate = dagster_logger.propagate
    dagster_logger.addHandler(handler)
    dagster_logger.propagate = False
    try:
        with path.open("a") as stream, contextlib.redirect_stdout(stream):
            yield
    finally:
        dagster_logger.removeHandler(handler)
        dagster_logger.propagate = propagate
        handler.close()


def run_metadata(result, key: str, asset: str | None = None) -> int:
    """A run-level figure, which every partition's materialisation of the run repeats."""
    for event in result.get_asset_materialization_events():
        if asset is not None and event.asset_key.to_user_string() != asset:
            continue
        value = event.materialization.metadata.get(key)
        if value is not None:
            return int(value.value)
    return 0
