"""Meter telemetry: interval readings from the head-end API into `raw.meter_readings`."""

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

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

from orchestration.conditions import fill_missing
from orchestration.partitions import hourly_partitions
from resources.postgres import PostgresResource
from resources.readings_loader import ReadingRules, load_hour
from resources.telemetry_api import TelemetryApiResource


class ReadingRulesConfig(Config):
    """Bounds a reading must respect to load; the rest is quarantined with the rule it broke."""

    voltage_min_v: float = Field(default=ReadingRules.voltage_min_v, description="Lowest plausible RMS voltage, V.")
    voltage_max_v: float = Field(default=ReadingRules.voltage_max_v, description="Highest plausible RMS voltage, V.")
    future_tolerance_s: int = Field(
        default=ReadingRules.future_tolerance_s, description="Clock skew tolerated before a timestamp counts as future, s."
    )


READINGS = AssetKey(["raw", "meter_readings"])
# The materialisation's metadata key for `Delivery.as_of`.
LOADED_AS_OF = "loaded_as_of"


class Delivery:
    """One hour's readings from the head-end, opened as often as the loader needs (a cut
    body is fetched again). `as_of` is when the head-end answered the request that was
    loaded last (its `Date`, or when we asked): what the hour can hold is what had ended
    by then. Judged as of the check instead, the first load of every hour (at :00, with
    nothing ended yet) would fail."""

    def __init__(self, telemetry_api: TelemetryApiResource, start: datetime, end: datetime):
        self.telemetry_api, self.start, self.end = telemetry_api, start, end
        self.as_of = datetime.now(UTC)

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        asked_at = datetime.now(UTC)
        with self.telemetry_api.stream_readings(self.start, self.end) as body:
            self.as_of = body.answered_at or asked_at
            yield body


def hours(start: datetime, end: datetime) -> list[datetime]:
    """The hour starts in [start, end).

    A long backfill runs as one run that loads one hour per request and transaction:
    bounded memory and transaction size, and a failure loses at most the hour in flight.
    """
    first = start.replace(minute=0, second=0, microsecond=0)
    count = int((end - first) / timedelta(hours=1))
    return [first + timedelta(hours=i) for i in range(count)]


@asset(
    key=READINGS,
    deps=[AssetKey(["raw", "meters"])],
    partitions_def=hourly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="telemetry",
    kinds={"python", "postgres"},
    owners=["team:energy-data"],
    automation_condition=fill_missing(),
)
def meter_readings(
    context: AssetExecutionContext,
    config: ReadingRulesConfig,
    telemetry_api: TelemetryApiResource,
    postgres: PostgresResource,
) -> MaterializeResult:
    """Interval readings of every meter (energy, power, voltage, power factor), one row
    per meter and interval start, in `raw.meter_readings` (partitioned by UTC day).

    Each hour is loaded into a fresh table and swapped in as that hour's partition in
    one transaction, so reruns and overlapping backfills never duplicate or half-write. Rows that break a rule (unparseable values,
    NaN, negative energy, power factor outside [0, 1], voltage outside the band, future
    or out-of-window timestamps, repeated keys, unknown meters) go to
    `raw.meter_readings_rejected` with the rule; the good rows of the window still load.
    """
    window = context.partition_time_window
    rules = ReadingRules(**config.model_dump())
    totals = {"received": 0, "loaded": 0, "replaced": 0}
    rejected: dict[str, int] = {}
    slow_path = False
    seconds: dict[str, float] = {}
    for hour in hours(window.start, window.end):
        end = hour + timedelta(hours=1)
        delivery = Delivery(telemetry_api, hour, end)
        result = load_hour(postgres.engine, delivery.open, hour, rules, telemetry_api.retry_policy())
        totals["received"] += result.received
        totals["loaded"] += result.loaded
        totals["replaced"] += int(result.replaced)
        for rule, count in result.rejected.items():
            rejected[rule] = rejected.get(rule, 0) + count
        slow_path = slow_path or result.slow_path
        for phase, spent in result.seconds.items():
            seconds[phase] = seconds.get(phase, 0.0) + spent
        context.log.info(
            f"{hour:%Y-%m-%d %H:%M}–{end:%H:%M} UTC: {result.loaded:,} readings loaded, "
            f"{result.rejected_total:,} quarantined {result.rejected or ''}"
        )

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
        "hours_replaced": totals["replaced"],
        # Where the load time went, summed over the run's hours.
        **{f"seconds/{phase}": round(spent, 2) for phase, spent in seconds.items()},
        "window_start": MetadataValue.timestamp(window.start),
        "window_end": MetadataValue.timestamp(window.end),
        # When the head-end answered for the run's last hour: the open hour holds what had
        # ended by then, and `readings_expectations` judges it as of then.
        LOADED_AS_OF: MetadataValue.timestamp(delivery.as_of),
    }
    if len(context.partition_keys) == 1:
        metadata["dagster/row_count"] = totals["loaded"]
    return MaterializeResult(metadata=metadata)
