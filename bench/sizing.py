"""Sizing: how far one PostgreSQL node carries raw.meter_readings, from measured throughput.

Fills --meters meters × --interval-s readings for --days closed days through the real
jobs (as `wattline demo` does), and measures on this machine:
- ingest: readings per second through the telemetry asset (HTTP → COPY → rules →
  partition swap), against raw COPY of one hour of the same rows (the limit);
- rollup: readings per second through the time-partitioned marts (dbt), over the
  whole range and for one hour (what each new hour costs);
- storage: bytes per reading in raw.meter_readings (table, key and partitions).

Then projects fleets of 1,000 to 100,000 meters at 10 s, 60 s and 15 min readings: rows
per day and per second, hour partition size, the share of this node's hour that ingest
and rollup of an hour of data take, raw storage for the retention window, and what to
run (deploy/README.md explains the options).
"""

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _report import report
from bench_support import fill, fresh_database, isolate, simulator

FLEETS = [1_000, 5_000, 20_000, 100_000]
INTERVALS = [10, 60, 900]
RETENTION_DAYS = 90
# Past this share of the node's hour, backfills and reruns have no headroom left.
BUSY_SHARE = 0.5
# Past this much raw data, one node's disk and vacuum become the limit before its CPU.
BIG_RAW_GB = 1_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meters", type=int, default=5000)
    parser.add_argument("--interval-s", type=int, default=60)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="COPY repeats for the limit")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    isolate()

    from ingest import copy_limit

    from simulator.fleet import build_fleet, facilities_for_meters

    n_facilities = facilities_for_meters(42, args.meters)
    meters = len(build_fleet(42, n_facilities).meters)
    with simulator(n_facilities, args.interval_s) as url, fresh_database() as database:
        filled = fill(database, url, args.days, "sizing")
        engine = sa.create_engine(database.sqlalchemy_url)
        with engine.connect() as conn:
            # The hour partitions (the leaves under each day): table, key and TOAST.
            raw_bytes = conn.scalar(sa.text(
                "select sum(pg_total_relation_size(relid)) from pg_partition_tree('raw.meter_readings') where isleaf"
            ))
        engine.dispose()
        last_hour = (filled["end"] - timedelta(hours=1), filled["end"])
        started = time.perf_counter()
        copy_rates, _ = copy_limit(database, url, *last_hour, args.repeats)
        copy_seconds = time.perf_counter() - started

    readings, seconds = filled["readings"], filled["seconds"]
    hour_readings = readings / (args.days * 24)
    figures = {
        "meters": meters,
        "interval_s": args.interval_s,
        "days": args.days,
        "readings": readings,
        "ingest_rows_per_s": round(readings / seconds["telemetry"]),
        "copy_rows_per_s": round(statistics.median(copy_rates)),
        "rollup_rows_per_s": round(readings / seconds["dbt"]),
        "one_hour_of_marts_s": round(seconds["one hour of marts"], 1),
        "bytes_per_reading": round(float(raw_bytes) / readings, 1),
        "copy_limit_s": round(copy_seconds, 1),
    }
    figures["ingest_ratio_to_copy"] = round(figures["ingest_rows_per_s"] / figures["copy_rows_per_s"], 2)
    # An hour of marts has a fixed part (dbt start, the whole-table marts) and a part per
    # reading; the full-range run gives the per-reading rate, the one-hour run the total.
    fixed_s = max(0.0, seconds["one hour of marts"] - hour_readings / figures["rollup_rows_per_s"])
    figures["marts_fixed_s_per_hour"] = round(fixed_s, 1)
    figures["projection"] = [project(m, i, figures, fixed_s) for m in FLEETS for i in INTERVALS]
    # The fleet of 10-second meters at which ingest and rollup take BUSY_SHARE of the hour.
    per_meter_s = 360 / figures["ingest_rows_per_s"] + 360 / figures["rollup_rows_per_s"]
    figures["meters_10s_at_busy_share"] = round((BUSY_SHARE * 3600 - fixed_s) / per_meter_s, -3)

    print(f"measured: {meters:,} meters × {args.interval_s} s for {args.days} day(s), {readings:,} readings")
    report(
        [
            ("ingest through the telemetry asset, rows/s", f"{figures['ingest_rows_per_s']:,}"),
            ("raw COPY of one hour of the same rows, rows/s (limit)", f"{figures['copy_rows_per_s']:,}"),
            ("ratio ingest / raw COPY", f"{figures['ingest_ratio_to_copy']:.2f}"),
            ("rollup through the incremental marts, rows/s", f"{figures['rollup_rows_per_s']:,}"),
            ("one hour of marts (incremental + whole-table), s", f"{figures['one_hour_of_marts_s']:.1f}"),
            ("  of which fixed (dbt start, whole-table marts), s", f"{figures['marts_fixed_s_per_hour']:.1f}"),
            ("raw.meter_readings bytes per reading (with key)", f"{figures['bytes_per_reading']:.0f}"),
        ],
        figures,
        args.json,
    )
    print()
    partitions = RETENTION_DAYS * (24 + 1)  # 24 hour partitions and their day table
    print("| meters | interval | readings/day | rows/s (avg) | rows per hour partition | GB/day raw | node share (ingest + rollup) "
          f"| raw GB for {RETENTION_DAYS} days | run on |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in figures["projection"]:
        print(
            f"| {row['meters']:,} | {row['interval_s']} s | {row['readings_per_day']:,.0f} | {row['rows_per_s']:,.0f} | "
            f"{row['readings_per_day'] / 24:,.0f} | {row['gb_per_day']:.1f} | {row['node_share']:.0%} | {row['retention_gb']:,.0f} | {row['run_on']} |"
        )
    print(
        f"\none node is {BUSY_SHARE:.0%} busy with ingest and rollup at about {figures['meters_10s_at_busy_share']:,.0f} meters × 10 s "
        f"({figures['meters_10s_at_busy_share'] * 6:,.0f} × 60 s)"
    )
    print(f"partitions: 24 hour partitions under each UTC day: {partitions:,} tables for {RETENTION_DAYS} days at any fleet size")


def project(meters: int, interval_s: int, figures: dict, fixed_s: float) -> dict:
    per_day = meters * 86_400 / interval_s
    per_hour = per_day / 24
    busy_s = per_hour / figures["ingest_rows_per_s"] + per_hour / figures["rollup_rows_per_s"] + fixed_s
    gb_per_day = per_day * figures["bytes_per_reading"] / 1e9
    share = busy_s / 3600
    retention_gb = gb_per_day * RETENTION_DAYS
    if share >= BUSY_SHARE:
        run_on = "Citus: raw.meter_readings distributed by meter_id"
    elif retention_gb >= BIG_RAW_GB:
        run_on = "TimescaleDB: hypertable, compressed after 7 days"
    else:
        run_on = "one PostgreSQL, as shipped"
    return {
        "meters": meters,
        "interval_s": interval_s,
        "readings_per_day": per_day,
        "rows_per_s": per_day / 86_400,
        "gb_per_day": gb_per_day,
        "node_share": share,
        "retention_gb": retention_gb,
        "run_on": run_on,
    }


if __name__ == "__main__":
    main()
