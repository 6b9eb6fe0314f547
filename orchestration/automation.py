"""Schedules that keep the sources fresh while `wattline up` runs (its daemon ticks them).

Each tick asks for the partitions a source is still filling: the open telemetry hour
every five minutes (and, early in an hour, the hour just closed, so readings the
head-end delivered late complete it), today's real-time prices every five minutes,
today's weather and carbon every hour (and yesterday's early in a day, turning its
estimates into final values), and the registry once a day. Downstream assets follow
by their automation conditions (orchestration/conditions.py). A run key per partition and tick keeps a daemon restart from
launching a tick twice.
"""

from datetime import datetime, timedelta

from dagster import (
    AssetRecordsFilter,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from assets.telemetry import READINGS
from orchestration.jobs import (
    incremental_marts_job,
    prices_job,
    registry_job,
    telemetry_job,
    weather_and_carbon_job,
)
from orchestration.runs import HOURLY_KEY_FORMAT, hourly_range_tags

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


def _loaded(context: ScheduleEvaluationContext, hours: list[datetime]) -> bool:
    """Whether any of these telemetry hours was ever loaded. A settlement of hours before
    the platform's first load would rebuild nothing, and on a new warehouse it ran before
    the automation had built the views the marts read: it failed, retried and alerted."""
    keys = [f"{hour:{HOURLY_KEY_FORMAT}}" for hour in hours]
    records = context.instance.fetch_materializations(AssetRecordsFilter(asset_key=READINGS, asset_partitions=keys), limit=1)
    return bool(records.records)


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
    rebuilt here: their automation condition follows the reload."""
    return _partition_requests(open_hours(_tick(context)), _tick(context))


@schedule(
    job=prices_job,
    cron_schedule="1-59/5 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def five_minute_prices(context: ScheduleEvaluationContext):
    """Every 5 minutes (at :01, :06, …, a minute after the price interval closes): reload
    today's real-time prices, and yesterday's for the first two hours of the day."""
    return _partition_requests(open_days(_tick(context)), _tick(context))


@schedule(
    job=weather_and_carbon_job,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def hourly_weather_and_carbon(context: ScheduleEvaluationContext):
    """Every hour at :07: reload today's weather (observations so far and the next 48 h
    of forecast) and carbon intensity, and yesterday's for the first two hours."""
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


@schedule(
    job=incremental_marts_job,
    cron_schedule="20 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def hourly_marts_settlement(context: ScheduleEvaluationContext):
    """Every hour at :20: rebuild the marts of the hour just closed, now that the readings
    delivered late (reloaded until :15) are in. The open hour's marts follow each reload
    by their automation condition; this is the closed hour's last rebuild. An hour never
    loaded (a platform started after it) has nothing to settle: skipped."""
    closed = _tick(context).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    if not _loaded(context, [closed]):
        return SkipReason(f"telemetry for {closed:%Y-%m-%d %H:00} UTC was never loaded: nothing to settle")
    return RunRequest(run_key=f"settle-hour@{closed:{HOURLY_KEY_FORMAT}}", partition_key=f"{closed:{HOURLY_KEY_FORMAT}}")


@schedule(
    job=incremental_marts_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def daily_marts_settlement(context: ScheduleEvaluationContext):
    """Every day at 02:30 UTC: rebuild yesterday's marts in one run, now that its prices
    and carbon intensity are final (their sources are reloaded until 02:00), so costs and
    emissions are billed at the settled values rather than the estimates."""
    day = _tick(context).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    if not _loaded(context, [day + timedelta(hours=h) for h in range(24)]):
        return SkipReason(f"no telemetry hour of {day:%Y-%m-%d} was ever loaded: nothing to settle")
    return RunRequest(run_key=f"settle-day@{day:%Y-%m-%d}", tags=hourly_range_tags(day, day + timedelta(days=1)))


SCHEDULES = [
    open_hour_telemetry,
    five_minute_prices,
    hourly_weather_and_carbon,
    daily_registry,
    hourly_marts_settlement,
    daily_marts_settlement,
]
