"""Automation: the source schedules ask for the partitions still filling, once per tick;
the automation conditions bring everything downstream up to date after them, and the
settlement schedules rebuild an hour and a day once their inputs are final."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    build_schedule_context,
    evaluate_automation_conditions,
    instance_for_test,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from orchestration.automation import (
    daily_marts_settlement,
    daily_registry,
    five_minute_prices,
    hourly_marts_settlement,
    hourly_weather_and_carbon,
    open_hour_telemetry,
)
from orchestration.definitions import defs


def requests_at(schedule, tick: datetime, loaded: tuple[str, ...] = ()) -> list:
    return evaluate_at(schedule, tick, loaded).run_requests or []


def evaluate_at(schedule, tick: datetime, loaded: tuple[str, ...] = ()):
    """The schedule's tick on an instance where the telemetry hours `loaded` were materialised."""
    # Persistent (a temporary folder): a schedule's context reopens its instance by reference.
    with instance_for_test() as instance:
        for key in loaded:
            instance.report_runless_asset_event(AssetMaterialization(AssetKey(["raw", "meter_readings"]), partition=key))
        # Closed before the instance: the context reopens the instance, and an open one
        # would leave it as the current one for every later test in the session.
        with build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
        ) as context:
            return schedule.evaluate_tick(context)


def test_the_open_hour_is_reloaded_and_the_closed_one_while_readings_may_be_late():
    early = requests_at(open_hour_telemetry, datetime(2026, 3, 2, 10, 5, tzinfo=UTC))
    assert [r.partition_key for r in early] == ["2026-03-02-09:00", "2026-03-02-10:00"]
    later = requests_at(open_hour_telemetry, datetime(2026, 3, 2, 10, 40, tzinfo=UTC))
    assert [r.partition_key for r in later] == ["2026-03-02-10:00"]
    # A run key per partition and tick: the next tick reloads, a repeated tick does not.
    assert len({r.run_key for r in early + later}) == 3


def test_today_is_reloaded_and_yesterday_early_in_the_day():
    for schedule, minute in ((hourly_weather_and_carbon, 7), (five_minute_prices, 36)):
        assert [r.partition_key for r in requests_at(schedule, datetime(2026, 3, 2, 1, minute, tzinfo=UTC))] == [
            "2026-03-01", "2026-03-02",
        ]
        assert [r.partition_key for r in requests_at(schedule, datetime(2026, 3, 2, 14, minute, tzinfo=UTC))] == ["2026-03-02"]
    assert defs.resolve_job_def("prices_job").asset_layer.executable_asset_keys == {AssetKey(["raw", "grid_prices"])}
    assert defs.resolve_schedule_def("five_minute_prices").cron_schedule == "1-59/5 * * * *"


def test_the_closed_hour_and_yesterday_are_settled_once_their_inputs_are_final():
    (hour,) = requests_at(hourly_marts_settlement, datetime(2026, 3, 2, 10, 20, tzinfo=UTC), loaded=("2026-03-02-09:00",))
    assert hour.partition_key == "2026-03-02-09:00"
    (day,) = requests_at(daily_marts_settlement, datetime(2026, 3, 2, 2, 30, tzinfo=UTC), loaded=("2026-03-01-17:00",))
    assert (day.tags[ASSET_PARTITION_RANGE_START_TAG], day.tags[ASSET_PARTITION_RANGE_END_TAG]) == ("2026-03-01-00:00", "2026-03-01-23:00")
    assert hour.run_key != day.run_key


def test_hours_never_loaded_are_not_settled():
    # A platform started at 10:05 on a new warehouse: 09:00 was never loaded, and its
    # marts' inputs may not exist yet. The tick says so instead of failing a run.
    hour = evaluate_at(hourly_marts_settlement, datetime(2026, 3, 2, 10, 20, tzinfo=UTC), loaded=("2026-03-02-10:00",))
    assert not hour.run_requests and "2026-03-02 09:00 UTC was never loaded" in hour.skip_message
    day = evaluate_at(daily_marts_settlement, datetime(2026, 3, 2, 2, 30, tzinfo=UTC), loaded=("2026-03-02-00:00",))
    assert not day.run_requests and "2026-03-01 was ever loaded" in day.skip_message


NOW = datetime(2026, 11, 23, 10, 40, tzinfo=UTC)
OPEN_HOUR = "2026-11-23-10:00"
INCREMENTAL = {
    "intermediate/int_meter_load_15min", "intermediate/int_facility_energy_hourly", "marts/fct_load_15min",
    "marts/fct_load_hourly", "marts/fct_load_daily", "marts/fct_facility_utilization_15min",
    "marts/fct_energy_cost_hourly", "marts/fct_emissions_hourly",
}
SUMMARIES = {"marts/fct_meter_anomalies", "marts/fct_carbon_budget_status", "marts/fct_recommendations", "intermediate/int_alert_conditions"}


class Ticks:
    """The automation sensor's ticks against an instance whose runs complete at once."""

    def __init__(self, instance: DagsterInstance):
        self.instance, self.cursor = instance, None

    def __call__(self, at: datetime = NOW) -> dict[str, set]:
        result = evaluate_automation_conditions(defs, self.instance, evaluation_time=at, cursor=self.cursor)
        self.cursor = result.cursor
        return {r.key.to_user_string(): result.get_requested_partitions(r.key) for r in result.results if r.true_subset.size}

    def materialise(self, requested: dict[str, set]) -> None:
        for key, partitions in requested.items():
            for partition in partitions:
                self.instance.report_runless_asset_event(AssetMaterialization(AssetKey.from_user_string(key), partition=partition))


def test_a_new_platform_fills_itself_and_the_marts_follow_each_reload_of_the_open_hour():
    with DagsterInstance.ephemeral() as instance:
        tick = Ticks(instance)
        first = tick()
        # The registry, seeds, views and dimensions; nothing that reads data not there yet.
        assert {"raw/facilities", "raw/meters", "staging/stg_meter_readings", "marts/dim_facility", "staging/emission_factors"} <= set(first)
        assert not set(first) & (INCREMENTAL | SUMMARIES | {"raw/meter_readings", "marts/fct_load_forecast"})
        tick.materialise(first)

        second = tick()
        # The open hour and today (not the history) once the registry is in, and the
        # open hour's marts with it.
        assert second["raw/meter_readings"] == {OPEN_HOUR}
        assert second["raw/weather_hourly"] == second["raw/grid_prices"] == {"2026-11-23"}
        assert second["marts/fct_load_hourly"] == {OPEN_HOUR}
        assert not set(second) & SUMMARIES
        tick.materialise(second)
        settled = {}
        for _ in range(3):
            requested = tick()
            settled.update(requested)
            tick.materialise(requested)
        assert SUMMARIES <= set(settled) and INCREMENTAL <= set(second) | set(settled)
        assert tick(NOW + timedelta(minutes=3)) == {}, "nothing changed, nothing runs"

        # The schedule reloads the open hour: its marts only (no view, no other hour), then
        # every whole-table mart in one run.
        tick.materialise({"raw/meter_readings": {OPEN_HOUR}})
        after_reload = tick(NOW + timedelta(minutes=5))
        assert set(after_reload) == INCREMENTAL and all(p == {OPEN_HOUR} for p in after_reload.values())
        tick.materialise(after_reload)
        summaries = tick(NOW + timedelta(minutes=6))
        assert SUMMARIES <= set(summaries) and not set(summaries) & INCREMENTAL
        tick.materialise(summaries)

        # The open hour's marts were updated (by the settlement, say) and its telemetry
        # reloaded again between the same two ticks: the reload is not lost.
        tick.materialise({key: {OPEN_HOUR} for key in INCREMENTAL})
        tick.materialise({"raw/meter_readings": {OPEN_HOUR}})
        assert set(tick(NOW + timedelta(minutes=10))) >= INCREMENTAL

        # An hour later: the forecast (hourly at :20) and the new open hour.
        later = tick(NOW + timedelta(minutes=41))
        assert later["raw/meter_readings"] == {"2026-11-23-11:00"}
        assert later["marts/fct_load_forecast"] == {None}


def test_the_schedules_run_by_default_and_their_partitions_exist():
    registry = requests_at(daily_registry, datetime(2026, 3, 2, 3, 15, tzinfo=UTC))
    assert len(registry) == 1 and registry[0].partition_key is None
    for name in ("open_hour_telemetry", "five_minute_prices", "hourly_weather_and_carbon", "daily_registry",
                 "hourly_marts_settlement", "daily_marts_settlement"):
        assert defs.resolve_schedule_def(name).default_status.value == "RUNNING"
    # Each requested key is a partition of the job's assets (the open hour included).
    job = defs.resolve_job_def("telemetry_job")
    keys = job.partitions_def.get_partition_keys(current_time=datetime(2026, 3, 2, 10, 5, tzinfo=UTC))
    assert {"2026-03-02-09:00", "2026-03-02-10:00"} <= set(keys)
