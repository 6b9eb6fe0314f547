"""Schedules that keep the sources fresh while `wattline up` runs (its daemon ticks them).

Each tick asks for the partitions a source is still filling: the open telemetry hour
every five minutes (and, early in an hour, the hour just closed, so readings the
head-end delivered late complete it), today's weather, prices and carbon every hour
(and yesterday's early in a day, turning its estimates into final values), and the
registry once a day. A run key per partition and tick keeps a daemon restart from
launching a tick twice.
"""

from datetime import datetime, timedelta

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from orchestration.jobs import grid_and_weather_job, registry_job, telemetry_job
from orchestration.runs import HOURLY_KEY_FORMAT

# Readings can arrive minutes after their interval: the hour just closed is reloaded
# while the next is this young.
LATE_READINGS = timedelta(minutes=15)
# Sources revise a finished day's estimates for a while: yesterday is reloaded this long into today.
LATE_DAY = timedelta(hours=2)


def open_hours(now: datetime) -> list[str]:
    """The hourly partition keys still filling at `now` (UTC): the open hour, and the
    previous one while late readings may still arrive."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    keys = [hour]
    if now - hour < LATE_READINGS:
        keys.insert(0, hour - timedelta(hours=1))
    return [f"{key:{HOURLY_KEY_FORMAT}}" for key in keys]


def open_days(now: datetime) -> list[str]:
    """The daily partition keys still changing at `now` (UTC): today, and yesterday early in the day."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    keys = [day]
    if now - day < LATE_DAY:
        keys.insert(0, day - timedelta(days=1))
    return [f"{key:%Y-%m-%d}" for key in keys]


def _tick(context: ScheduleEvaluationContext) -> datetime:
    return context.scheduled_execution_time


def _partition_requests(keys: list[str], tick: datetime) -> list[RunRequest]:
    return [RunRequest(run_key=f"{key}@{tick:%Y-%m-%dT%H:%M}", partition_key=key) for key in keys]


@schedule(
    job=telemetry_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def open_hour_telemetry(context: ScheduleEvaluationContext):
    """Every 5 minutes: reload the open telemetry hour (and the hour just closed, for 15
    minutes), so raw.meter_readings trails the meters by minutes. The marts are not
    rebuilt here (incremental_marts_job)."""
    return _partition_requests(open_hours(_tick(context)), _tick(context))


@schedule(
    job=grid_and_weather_job,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def hourly_grid_and_weather(context: ScheduleEvaluationContext):
    """Every hour at :07: reload today's weather (observations so far and the next 48 h
    of forecast), prices and carbon intensity, and yesterday's for the first two hours."""
    return _partition_requests(open_days(_tick(context)), _tick(context))


@schedule(
    job=registry_job,
    cron_schedule="15 3 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def daily_registry(context: ScheduleEvaluationContext):
    """Every day at 03:15 UTC: refresh the facility and meter registry (new meters start
    loading; meters the head-end dropped are marked inactive)."""
    return RunRequest(run_key=f"registry@{_tick(context):%Y-%m-%d}")


SOURCE_SCHEDULES = [open_hour_telemetry, hourly_grid_and_weather, daily_registry]
