"""Partitions shared by the source assets and the dbt models built on them."""

from urllib.parse import quote, unquote

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    HourlyPartitionsDefinition,
)

from orchestration.settings import get_settings

# end_offset=1 includes the open hour, refreshed while it fills; a rerun replaces it.
hourly_partitions = HourlyPartitionsDefinition(
    start_date=f"{get_settings().history_start:%Y-%m-%d}-00:00",
    timezone="UTC",
    end_offset=1,
)

# end_offset=1 includes today, whose weather forecast, prices and carbon estimates are
# refreshed while it runs; a later run of the day replaces them with what happened.
daily_partitions = DailyPartitionsDefinition(
    start_date=f"{get_settings().history_start:%Y-%m-%d}",
    timezone="UTC",
    end_offset=1,
)

# One partition per demand-response event version, `<event id>@<version>`, added by the
# DR sensor as events arrive (sensors/dr_sensor.py).
dr_event_partitions = DynamicPartitionsDefinition(name="dr_events")


def dr_partition_key(event_id: str, version: str) -> str:
    """The dr_events partition key of an event version: `<event id>@<version>`, the event
    id's own `%` and `@` percent-encoded. Both an id and a version may hold `@` (the
    receiver's identifier rule), so only the first `@` of a key may end the id."""
    return f"{quote(event_id, safe=_ID_SAFE)}@{version}"


def dr_event_version(partition_key: str) -> tuple[str, str]:
    """The event id and version a dr_events partition key names (dr_partition_key's inverse)."""
    event_id, _, version = partition_key.partition("@")
    return unquote(event_id), version


# Everything an event id may hold is kept as it is but `%` and `@`.
_ID_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%@")
