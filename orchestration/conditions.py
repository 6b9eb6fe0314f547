"""Declarative automation: when each asset is brought up to date by `wattline_automation`.

The sources keep their cadence on schedules (orchestration/automation.py); a condition
here only fills what is missing, so a fresh platform loads the registry, the open hour
and today at once instead of at the next tick. Everything downstream follows its inputs:
the time-partitioned marts after the hours the sources reloaded, the whole-table marts
after those, the forecast once an hour.

Heavy runs never stack: no condition requests an asset while it, or one of its inputs,
is being written.
"""

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
)

from orchestration.runs import BACKGROUND_RUN_TAGS

# Sources that change every few minutes. An unpartitioned view or dimension reading
# them is unchanged by a reload, so their updates do not rebuild it.
FAST_SOURCES = AssetSelection.groups("telemetry", "weather", "grid")
# Partitioned (or external) inputs of whole-table models. Some partition of them is
# always missing (history never loaded, no DR event yet), which must not hold back a
# model that reads whatever they hold.
PARTITIONED_SOURCES = FAST_SOURCES | AssetSelection.groups("demand_response")

# Once an hour, after the weather forecast (:07) and that hour's first marts.
FORECAST_CRON = "20 * * * *"

AC = AutomationCondition


def _unfilled() -> AutomationCondition:
    """Never materialised, and not given up on: after a failed run the asset waits for
    its next trigger (a schedule, an input's update) instead of failing every tick."""
    return AC.missing() & ~AC.execution_failed()


def _pending(trigger: AutomationCondition) -> AutomationCondition:
    """`trigger` fired since this automation last requested the asset.

    Not `since_last_handled()`: that also resets when the asset is updated, and an
    input reloaded between the same two ticks as the asset's own update was lost (the
    reset wins when the two cannot be ordered). A run requested here starts after the
    trigger, so it covers it; an update by anything else covers nothing for certain.
    """
    return trigger.since(AC.newly_requested())


def _idle() -> AutomationCondition:
    """Neither the asset nor any of its inputs is being written."""
    return ~AC.any_deps_in_progress() & ~AC.in_progress()


def _when(trigger: AutomationCondition | None, label: str, partitioned_inputs: AssetSelection | None = None) -> AutomationCondition:
    """In the latest time window, request once `trigger` fired since the last request (or
    while unfilled), as soon as no input is missing (`partitioned_inputs` aside) and all
    is idle."""
    wanted = _unfilled() if trigger is None else _pending(trigger) | _unfilled()
    inputs_missing = AC.any_deps_missing()
    if partitioned_inputs is not None:
        inputs_missing = inputs_missing.ignore(partitioned_inputs)
    return (AC.in_latest_time_window() & wanted & ~inputs_missing & _idle()).with_label(label)


def fill_missing() -> AutomationCondition:
    """A source partition that is due but was never loaded (the open hour, today, the
    registry of a new warehouse). Its schedule keeps it fresh from then on."""
    return _when(None, "fill_missing")


def after_open_hour() -> AutomationCondition:
    """`eager()` for the open hour: its mart partition is rebuilt after each reload of the
    hour's telemetry, or of the day's prices, weather or carbon. The hour just closed is
    settled by a schedule once its late readings are in (orchestration/automation.py)."""
    return _when(AC.any_deps_updated(), "after_open_hour")


def after_inputs(incremental: AssetSelection) -> AutomationCondition:
    """For a whole-table model over the time-partitioned marts (`incremental`): rebuilt
    once a run has updated one of them, with the models between it and them in the
    same run; never before they hold anything."""
    updated = AC.any_deps_updated().ignore(incremental) | AC.any_deps_match(AC.newly_updated()).allow(incremental)
    return (
        _pending(updated)
        & AC.all_deps_match(~AC.missing()).allow(incremental)
        & ~AC.any_deps_missing().ignore(PARTITIONED_SOURCES | incremental)
        & _idle()
    ).with_label("after_inputs")


def after_slow_inputs() -> AutomationCondition:
    """For views, seeds and dimensions: built when missing or when an input other than
    the fast sources changes (the registry, a seed), not on every reload."""
    return _when(AC.any_deps_updated().ignore(FAST_SOURCES), "after_slow_inputs", partitioned_inputs=PARTITIONED_SOURCES)


def hourly_after_inputs(cron: str = FORECAST_CRON) -> AutomationCondition:
    """Once per `cron` tick, as soon as its inputs are idle."""
    return (_pending(AC.cron_tick_passed(cron, "UTC")) & ~AC.any_deps_missing() & _idle()).with_label(f"hourly_after_inputs({cron})")


wattline_automation = AutomationConditionSensorDefinition(
    "wattline_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    # The marts trail a telemetry reload by at most this (plus the dbt run).
    minimum_interval_seconds=15,
    run_tags=BACKGROUND_RUN_TAGS,
    description=(
        "Evaluates every asset's automation condition and requests the runs that bring it up to "
        "date: missing source partitions, the marts after their inputs, the forecast hourly."
    ),
)
