"""Telemetry ingest through the real asset code path, against raw COPY on the same server.

Pulls --minutes of readings for --meters meters at --interval-s from the simulator (a
separate process on loopback, as a real head-end would be), materialises the
`raw/meter_readings` partition with `dagster.materialize`, and in the same run COPYs
the same rows from a local file into a fresh table on the same server: the limit no
loader can beat. Prints medians of --repeats runs; reruns replace the window, so each
repeat is also an idempotent reload. Peak RSS is this process's (the loader's), the
simulator runs elsewhere.
"""

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from _report import report  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meters", type=int, default=5000)
    parser.add_argument("--interval-s", type=int, default=10)
    parser.add_argument("--minutes", type=int, default=60, help="window length (one run, one window)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.minutes % 60:
        parser.error("--minutes must be whole hours: partitions are hourly")

    os.environ.setdefault("WATTLINE_HOME", tempfile.mkdtemp(prefix="wattline-bench-"))
    from bench_support import fresh_database
    from dagster import DagsterInstance, materialize

    from assets.registry import facilities, meters
    from assets.telemetry import meter_readings
    from orchestration.runs import hourly_range_tags
    from resources.postgres import PostgresResource
    from resources.telemetry_api import TelemetryApiResource
    from simulator.fleet import build_fleet, facilities_for_meters

    n_facilities = facilities_for_meters(42, args.meters)
    meter_count = len(build_fleet(42, n_facilities).meters)

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    start = end - timedelta(minutes=args.minutes)
    port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(port), "--facilities", str(n_facilities), "--interval-s", str(args.interval_s)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(f"{url}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        with fresh_database() as database:
            resources = {"postgres": PostgresResource(url=database.url), "telemetry_api": TelemetryApiResource(base_url=url)}
            tags = hourly_range_tags(start, end)
            instance = DagsterInstance.ephemeral()
            assert materialize([facilities, meters], resources=resources, instance=instance).success
            ingest, rows, phases = [], 0, {}
            for _ in range(args.repeats):
                started = time.perf_counter()
                result = materialize([meter_readings], resources=resources, tags=tags, instance=instance)
                seconds = time.perf_counter() - started
                metadata = result.get_asset_materialization_events()[0].materialization.metadata
                rows = int(metadata["rows_loaded_in_run"].value)
                ingest.append(rows / seconds)
                phases.setdefault("run", []).append(seconds)
                for key, value in metadata.items():
                    if key.startswith("seconds/"):
                        phases.setdefault(key.removeprefix("seconds/"), []).append(float(value.value))
            peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            check_seconds = time_readings_check(resources, tags, instance, args.repeats)

            copy_rates, keyed_rates = copy_limit(database, url, start, end, args.repeats)
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)

    figures = {
        "meters": meter_count,
        "interval_s": args.interval_s,
        "rows": rows,
        "rows_per_s": round(statistics.median(ingest)),
        "copy_rows_per_s": round(statistics.median(copy_rates)),
        "copy_and_key_rows_per_s": round(statistics.median(keyed_rates)),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "seconds": {phase: round(statistics.median(values), 2) for phase, values in phases.items()},
        "readings_check_s": round(statistics.median(check_seconds), 2),
    }
    figures["ratio"] = round(figures["rows_per_s"] / figures["copy_rows_per_s"], 2)
    figures["ratio_to_copy_and_key"] = round(figures["rows_per_s"] / figures["copy_and_key_rows_per_s"], 2)
    print(f"{meter_count:,} meters × {args.interval_s} s readings, {args.minutes} min: {rows:,} rows (medians of {args.repeats})")
    report(
        [
            ("asset path: HTTP → COPY → validate → replace", f"{figures['rows_per_s']:,}"),
            ("raw COPY of the same rows, the limit", f"{figures['copy_rows_per_s']:,}"),
            ("ratio asset / raw COPY", f"{figures['ratio']:.2f}"),
            ("raw COPY + primary key (meter_id, ts) on the same rows", f"{figures['copy_and_key_rows_per_s']:,}"),
            ("ratio asset / (raw COPY + key)", f"{figures['ratio_to_copy_and_key']:.2f}"),
            ("peak RSS of the loader (MB)", f"{figures['peak_rss_mb']:.0f}"),
            *((f"seconds: {phase}", f"{spent:.2f}") for phase, spent in figures["seconds"].items()),
            ("seconds: Great Expectations check of the window (own step)", f"{figures['readings_check_s']:.2f}"),
        ],
        figures,
        args.json,
        heading=("path", "rows/s"),
    )


def time_readings_check(resources: dict, tags: dict, instance, repeats: int) -> list[float]:
    """The blocking readings check on the loaded window, run as the step it is in a
    telemetry run (it is not part of the load, so it is not in the asset path's rate)."""
    from dagster import AssetSelection, Definitions, define_asset_job

    from assets.source_checks import readings_expectations
    from assets.telemetry import meter_readings
    from orchestration.partitions import hourly_partitions

    job = define_asset_job("check_readings", AssetSelection.checks(readings_expectations), partitions_def=hourly_partitions)
    defs = Definitions(assets=[meter_readings], asset_checks=[readings_expectations], jobs=[job], resources=resources)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = defs.resolve_job_def("check_readings").execute_in_process(tags=tags, instance=instance)
        seconds.append(time.perf_counter() - started)
        [evaluation] = result.get_asset_check_evaluations()
        if not evaluation.passed:
            raise SystemExit(f"the readings check failed on the benchmark window: {evaluation.description}")
    return seconds


def copy_limit(database, url: str, start: datetime, end: datetime, repeats: int) -> list[float]:
    """COPY the same CSV, from a local file, into a fresh logged table with the same columns."""
    import psycopg2

    with tempfile.NamedTemporaryFile(suffix=".csv") as body:
        with requests.get(f"{url}/v1/readings", params={"start": start.isoformat(), "end": end.isoformat()}, stream=True, timeout=300) as response:
            for chunk in response.iter_content(1 << 20):
                body.write(chunk)
        body.flush()
        rates, keyed = [], []
        connection = psycopg2.connect(database.url)
        try:
            for i in range(repeats):
                with connection.cursor() as cur:
                    cur.execute(f"create table bench_copy_{i} (like raw.meter_readings including defaults)")
                    connection.commit()
                    with open(body.name, "rb") as stream:
                        started = time.perf_counter()
                        cur.copy_expert(
                            f"copy bench_copy_{i} (ts, meter_id, facility_id, interval_s, energy_kwh, active_power_kw, "
                            "reactive_power_kvar, voltage_v, current_a, power_factor, frequency_hz, energy_source) "
                            "from stdin with (format csv, header true)",
                            stream,
                        )
                        connection.commit()
                        copied, rows = time.perf_counter(), cur.rowcount
                        rates.append(rows / (copied - started))
                        # The key every idempotent load into raw.meter_readings must build.
                        cur.execute("set maintenance_work_mem = '1GB'")
                        cur.execute(f"alter table bench_copy_{i} add primary key (meter_id, ts)")
                        connection.commit()
                        keyed.append(rows / (time.perf_counter() - started))
        finally:
            connection.close()
    return rates, keyed


if __name__ == "__main__":
    main()
