"""Meter telemetry: interval readings from the head-end API into `raw.meter_readings`."""

from datetime import datetime, timedelta

from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from orchestration.partitions import hourly_partitions
from resources.postgres import PostgresResource
from resources.readings_loader import ReadingRules, load_window
from resources.telemetry_api import TelemetryApiResource


class ReadingRulesConfig(Config):
    """Bounds a reading must respect to load; the rest is quarantined with the rule it broke."""

    voltage_min_v: float = Field(default=ReadingRules.voltage_min_v, description="Lowest plausible RMS voltage, V.")
    voltage_max_v: float = Field(default=ReadingRules.voltage_max_v, description="Highest plausible RMS voltage, V.")
    future_tolerance_s: int = Field(
        default=ReadingRules.future_tolerance_s, description="Clock skew tolerated before a timestamp counts as future, s."
    )

def day_chunks(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Split [start, end) at midnight UTC.

    A long backfill runs as one run that loads one UTC day per request and
    transaction: bounded memory and transaction size, and a failure loses at most
    the day in flight.
    """
    chunks = []
    cursor = start
    while cursor < end:
        next_midnight = cursor.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        upper = min(next_midnight, end)
        chunks.append((cursor, upper))
        cursor = upper
    return chunks


@asset(
    key=AssetKey(["raw", "meter_readings"]),
    deps=[AssetKey(["raw", "meters"])],
    partitions_def=hourly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="telemetry",
    kinds={"python", "postgres"},
    owners=["team:energy-data"],
)
def meter_readings(
    context: AssetExecutionContext,
    config: ReadingRulesConfig,
    telemetry_api: TelemetryApiResource,
    postgres: PostgresResource,
) -> MaterializeResult:
    """Interval readings of every meter (energy, power, voltage, power factor), one row
    per meter and interval start, in `raw.meter_readings` (partitioned by UTC day).

    Each run replaces its hours in one transaction per day, so reruns and overlapping
    backfills never duplicate or half-write. Rows that break a rule (unparseable values,
    NaN, negative energy, power factor outside [0, 1], voltage outside the band, future
    or out-of-window timestamps, repeated keys, unknown meters) go to
    `raw.meter_readings_rejected` with the rule; the good rows of the window still load.
    """
    window = context.partition_time_window
    rules = ReadingRules(**config.model_dump())
    totals = {"received": 0, "loaded": 0, "replaced": 0}
    rejected: dict[str, int] = {}
    slow_path = False
    for start, end in day_chunks(window.start, window.end):
        result = load_window(postgres.engine, lambda s=start, e=end: telemetry_api.stream_readings(s, e), start, end, rules)
        totals["received"] += result.received
        totals["loaded"] += result.loaded
        totals["replaced"] += result.replaced
        for rule, count in result.rejected.items():
            rejected[rule] = rejected.get(rule, 0) + count
        slow_path = slow_path or result.slow_path
        context.log.info(
            f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC: {result.loaded:,} readings loaded, "
            f"{result.rejected_total:,} quarantined {result.rejected or ''}"
        )

    with postgres.connection() as conn:
        stats = conn.exec_driver_sql(
            "select count(distinct facility_id), count(distinct meter_id), min(ts), max(ts) "
            "from raw.meter_readings where ts >= %(s)s and ts < %(e)s",
            {"s": window.start, "e": window.end},
        ).one()
    # A backfill range runs once but materialises every hour in it, each with this
    # metadata: so the run's totals are named as such, and only a one-hour run
    # reports its count as the partition's row count.
    metadata = {
        "rows_loaded_in_run": totals["loaded"],
        "hours_in_run": len(context.partition_keys),
        "rows_received": totals["received"],
        "rows_rejected": sum(rejected.values()),
        **{f"rejected/{rule}": count for rule, count in sorted(rejected.items())},
        "malformed_delivery": slow_path,
        "rows_replaced": totals["replaced"],
        "facilities": stats[0],
        "meters": stats[1],
        "window_start": MetadataValue.timestamp(window.start),
        "window_end": MetadataValue.timestamp(window.end),
        "first_reading": MetadataValue.timestamp(stats[2]) if stats[2] else None,
        "last_reading": MetadataValue.timestamp(stats[3]) if stats[3] else None,
    }
    if len(context.partition_keys) == 1:
        metadata["dagster/row_count"] = totals["loaded"]
    return MaterializeResult(metadata={k: v for k, v in metadata.items() if v is not None})
