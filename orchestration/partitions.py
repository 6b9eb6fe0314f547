"""Partitions shared by the telemetry assets and the dbt models built on them."""

from dagster import HourlyPartitionsDefinition

from orchestration.settings import get_settings

# end_offset=1 includes the open hour, refreshed while it fills; a rerun replaces it.
hourly_partitions = HourlyPartitionsDefinition(
    start_date=f"{get_settings().history_start:%Y-%m-%d}-00:00",
    timezone="UTC",
    end_offset=1,
)
