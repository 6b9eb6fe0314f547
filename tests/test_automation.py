"""The source schedules ask for the partitions still filling, once per tick."""

from datetime import UTC, datetime

from dagster import DagsterInstance, build_schedule_context

from orchestration.automation import daily_registry, hourly_grid_and_weather, open_hour_telemetry
from orchestration.definitions import defs


def requests_at(schedule, tick: datetime) -> list:
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
        )
        result = schedule.evaluate_tick(context)
    return result.run_requests or []


def test_the_open_hour_is_reloaded_and_the_closed_one_while_readings_may_be_late():
    early = requests_at(open_hour_telemetry, datetime(2026, 3, 2, 10, 5, tzinfo=UTC))
    assert [r.partition_key for r in early] == ["2026-03-02-09:00", "2026-03-02-10:00"]
    later = requests_at(open_hour_telemetry, datetime(2026, 3, 2, 10, 40, tzinfo=UTC))
    assert [r.partition_key for r in later] == ["2026-03-02-10:00"]
    # A run key per partition and tick: the next tick reloads, a repeated tick does not.
    assert len({r.run_key for r in early + later}) == 3


def test_today_is_reloaded_hourly_and_yesterday_early_in_the_day():
    assert [r.partition_key for r in requests_at(hourly_grid_and_weather, datetime(2026, 3, 2, 1, 7, tzinfo=UTC))] == [
        "2026-03-01", "2026-03-02",
    ]
    assert [r.partition_key for r in requests_at(hourly_grid_and_weather, datetime(2026, 3, 2, 14, 7, tzinfo=UTC))] == ["2026-03-02"]


def test_the_schedules_run_by_default_and_their_partitions_exist():
    registry = requests_at(daily_registry, datetime(2026, 3, 2, 3, 15, tzinfo=UTC))
    assert len(registry) == 1 and registry[0].partition_key is None
    for name in ("open_hour_telemetry", "hourly_grid_and_weather", "daily_registry"):
        assert defs.resolve_schedule_def(name).default_status.value == "RUNNING"
    # Each requested key is a partition of the job's assets (the open hour included).
    job = defs.resolve_job_def("telemetry_job")
    keys = job.partitions_def.get_partition_keys(current_time=datetime(2026, 3, 2, 10, 5, tzinfo=UTC))
    assert {"2026-03-02-09:00", "2026-03-02-10:00"} <= set(keys)
