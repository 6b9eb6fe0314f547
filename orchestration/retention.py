"""Retention: the scheduled job that keeps the warehouse to a size, and says what it
removed.

- `raw.meter_readings`: each UTC day partition older than `raw_days` is dropped (a
  partition dropped, not rows deleted), but only when every facility-hour it holds has
  its hourly rollup in `marts.fct_load_hourly` built from at least as many readings. A
  day without complete rollups is kept and reported, and goes at a later run once the
  marts have caught up.
- The time-partitioned marts (hourly and 15-minute, and the per-meter intermediate
  they are built from) keep `marts_days` of rows.

The marts then hold history the raw layer no longer has: a full refresh of the
incremental models (`dbt build --full-refresh`) would rebuild them from what raw still
holds, and that history would go. Backfill partitions instead.
"""

from datetime import UTC, date, datetime, timedelta

from dagster import (
    Config,
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Output,
    RunRequest,
    job,
    op,
    schedule,
)
from psycopg2 import sql as pgsql
from pydantic import Field

from orchestration.runs import BACKGROUND_RUN_TAGS
from orchestration.settings import get_settings
from resources.postgres import PostgresResource
from resources.sql_files import statements

# Tables trimmed to the marts' retention, with their time column: the incremental
# models (dbt_project/models, config window_column).
TIME_PARTITIONED_MARTS = (
    ("intermediate", "int_meter_load_15min", "interval_start"),
    ("intermediate", "int_facility_energy_hourly", "hour_start"),
    ("marts", "fct_load_15min", "interval_start"),
    ("marts", "fct_facility_utilization_15min", "interval_start"),
    ("marts", "fct_load_hourly", "hour_start"),
    ("marts", "fct_emissions_hourly", "hour_start"),
    ("marts", "fct_energy_cost_hourly", "hour_start"),
)


class RetentionConfig(Config):
    raw_days: int | None = Field(
        default=None, description="Days of raw.meter_readings kept; unset = WATTLINE_RETENTION_RAW_DAYS (default 90).",
    )
    marts_days: int | None = Field(
        default=None, description="Days of hourly and 15-minute marts kept; unset = WATTLINE_RETENTION_MARTS_DAYS (default 730).",
    )
    as_of: str | None = Field(default=None, description="ISO 8601 instant the ages are counted from; unset = now.")


@op(description="Drop raw.meter_readings day partitions past retention whose hourly rollups exist, and trim the time-partitioned marts.")
def apply_retention(context: OpExecutionContext, config: RetentionConfig, postgres: PostgresResource):
    settings = get_settings()
    raw_days = settings.retention_raw_days if config.raw_days is None else config.raw_days
    marts_days = settings.retention_marts_days if config.marts_days is None else config.marts_days
    if raw_days < 1 or marts_days < 1:
        raise Failure(f"retention must keep at least a day: raw_days {raw_days}, marts_days {marts_days}")
    now = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)
    raw_cutoff = (now - timedelta(days=raw_days)).date()
    marts_cutoff = now - timedelta(days=marts_days)
    sql = statements("retention.sql")
    dropped, kept, trimmed = [], [], {}
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["raw_day_partitions"])
        partitions = [(name, day) for name, day in cur.fetchall() if day < raw_cutoff]
    for name, day in partitions:
        table = pgsql.Identifier("raw", name)
        # One transaction per day: the check and the drop see the same rollups, and a
        # failure keeps every day not yet dropped.
        with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
            cur.execute(pgsql.SQL(sql["hours_without_rollups"]).format(partition=table))
            missing, first = cur.fetchone()
            if missing:
                kept.append((day, f"{missing} facility-hours without a complete hourly rollup, from {first:%Y-%m-%d %H:%M} UTC"))
                continue
            cur.execute(pgsql.SQL(sql["partition_rows"]).format(partition=table))
            rows = cur.fetchone()[0]
            cur.execute(pgsql.SQL(sql["drop_partition"]).format(partition=table))
        dropped.append((day, rows))
        context.log.info(f"dropped raw.{name}: {rows:,} readings of {day}")
    for reason_day, reason in kept:
        context.log.warning(f"kept raw.meter_readings of {reason_day}: {reason}")
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        for schema, table, column in TIME_PARTITIONED_MARTS:
            cur.execute(sql["table_exists"], {"table": f"{schema}.{table}"})
            if not cur.fetchone()[0]:
                continue
            cur.execute(
                pgsql.SQL(sql["delete_old_marts"]).format(table=pgsql.Identifier(schema, table), column=pgsql.Identifier(column)),
                {"cutoff": marts_cutoff},
            )
            trimmed[f"{schema}.{table}"] = cur.rowcount
    return Output(
        {"dropped": [str(d) for d, _ in dropped], "kept": [str(d) for d, _ in kept], "trimmed": trimmed},
        metadata={
            "raw_cutoff": MetadataValue.text(f"{raw_cutoff} (days before it are dropped)"),
            "marts_cutoff": MetadataValue.timestamp(marts_cutoff),
            "raw_days_dropped": len(dropped),
            "raw_rows_dropped": sum(rows for _, rows in dropped),
            "raw_days_kept": len(kept),
            "report": MetadataValue.md(_report(dropped, kept, trimmed)),
        },
    )


def _report(dropped: list[tuple[date, int]], kept: list[tuple[date, str]], trimmed: dict[str, int]) -> str:
    lines = ["| removed | what |", "| --- | --- |"]
    lines += [f"| raw.meter_readings of {day} | {rows:,} readings (partition dropped) |" for day, rows in dropped]
    lines += [f"| {table} | {rows:,} rows past retention |" for table, rows in trimmed.items() if rows]
    if len(lines) == 2:
        lines.append("| nothing | nothing was past retention |")
    if kept:
        lines += ["", "Kept past retention (dropped at a later run once the marts have them):", ""]
        lines += [f"- raw.meter_readings of {day}: {reason}" for day, reason in kept]
    return "\n".join(lines)


@job(
    tags=BACKGROUND_RUN_TAGS,
    description="Drop raw telemetry day partitions past WATTLINE_RETENTION_RAW_DAYS once their hourly rollups exist, "
    "and trim marts past WATTLINE_RETENTION_MARTS_DAYS.",
)
def retention_job():
    apply_retention()


@schedule(job=retention_job, cron_schedule="30 4 * * *", execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING)
def daily_retention(context):
    """Every day at 04:30 UTC, after the night's marts: apply retention."""
    return RunRequest(run_key=f"retention@{context.scheduled_execution_time:%Y-%m-%d}")
