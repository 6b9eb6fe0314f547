"""Demand-response latency through the running platform: webhook acknowledgement, and
webhook to committed plan.

Fills a fresh database the real way (--facilities simulated facilities, --days of
15-minute readings: the history the 10-in-10 baseline reads), starts `wattline up`
against it (Dagster webserver + daemon with the DR sensor, the webhook receiver), then
sends --events signed DR events as a utility would, one every --spacing seconds, each
for --per-event random facilities tomorrow (so none is dispatched during the run), and
every fifth one delivered twice. It prints:

- ack latency, p50 / p99: POST sent → 202 received (the event is stored before the 202);
- plan latency, p50 / p95: POST sent → the plan committed (ops.dr_events.planned_at),
  through the sensor tick, the queued run's launch in its own process, the baseline and
  the plan;
- plans per event version (redeliveries must add none);

and the limits measured in the same run: the receiver's `GET /healthz` round trip (the
ack's floor without the database) and the baseline + plan materialised in this process
for one of the events (the plan's floor without the sensor and the run launch).

Goals: ack p99 ≤ 50 ms; plan p95 ≤ 15 s on 2 cores.
"""

import argparse
import base64
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from _report import report
from bench_support import fill, free_port, fresh_database, isolate, simulator

GOAL_ACK_P99_MS = 50.0
GOAL_PLAN_P95_S = 15.0


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1] if len(values) > 1 else values[0]


def wait(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facilities", type=int, default=10)
    parser.add_argument("--days", type=int, default=15)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--per-event", type=int, default=3, help="facilities per event")
    parser.add_argument("--spacing", type=float, default=3.0, help="seconds between events")
    parser.add_argument("--burst", type=int, default=0, help="then this many events at once, timed until all are planned")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.events < 20:
        parser.error("--events must be at least 20: p95 and p99 of fewer mean little")

    isolate()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with fresh_database() as database, fresh_database() as dagster_storage, simulator(args.facilities, 900) as sim_url:
        fill(database, sim_url, args.days, "dr-latency")
        engine = sa.create_engine(database.sqlalchemy_url)
        ui_port, webhook_port = free_port(), free_port()
        log = Path(os.environ["WATTLINE_HOME"]) / "logs" / "dr-latency-up.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "WATTLINE_DATABASE_URL": database.url,
            "WATTLINE_DAGSTER_DATABASE_URL": dagster_storage.url,
            "WATTLINE_WEBHOOK_SECRET": secret,
            "WATTLINE_UI_PORT": str(ui_port),
            "WATTLINE_WEBHOOK_PORT": str(webhook_port),
        }
        env.pop("DAGSTER_HOME", None)
        with log.open("w") as output:
            up = subprocess.Popen(
                [sys.executable, "-m", "orchestration.cli", "up"], cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        receiver = f"http://127.0.0.1:{webhook_port}"
        try:
            print(f"wattline up: receiver {receiver}, UI http://127.0.0.1:{ui_port}; output: {log}", flush=True)
            figures = measure(args, engine, receiver, secret, database)
        finally:
            up.terminate()
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
            engine.dispose()

    rows = [
        ("events sent (+ redeliveries)", f"{figures['events']} (+{figures['redeliveries']})"),
        ("event versions stored", f"{figures['stored']}"),
        ("plans committed", f"{figures['plans']}"),
        ("ack p50 / p99, ms", f"{figures['ack_p50_ms']:.1f} / {figures['ack_p99_ms']:.1f}"),
        ("healthz round trip p50, ms (limit)", f"{figures['healthz_p50_ms']:.1f}"),
        ("ack p50 / healthz p50", f"{figures['ack_p50_ms'] / figures['healthz_p50_ms']:.1f}x"),
        ("plan p50 / p95, s", f"{figures['plan_p50_s']:.1f} / {figures['plan_p95_s']:.1f}"),
        *((f"  {stage}, p50 / max, s", f"{figures['stages_p50_s'].get(stage, 0):.1f} / {figures['stages_max_s'].get(stage, 0):.1f}")
          for stage in STAGES),
        ("plan runs", f"{figures['runs']}"),
        *(((f"burst: {figures['burst_events']} events sent in, s", f"{figures['burst_send_s']:.1f} ({figures['burst_refused']} refused)"),
           ("burst fully planned after, s", "not all planned" if figures["burst_planned_s"] is None else f"{figures['burst_planned_s']:.0f}"))
          if "burst_events" in figures else ()),
        ("baseline + plan in-process, s (limit)", f"{figures['in_process_plan_s']:.2f}"),
        ("plan p50 / in-process", f"{figures['plan_p50_s'] / figures['in_process_plan_s']:.1f}x"),
        ("goal ack p99 ≤ 50 ms", "met" if figures["ack_p99_ms"] <= GOAL_ACK_P99_MS else "MISSED"),
        ("goal plan p95 ≤ 15 s", "met" if figures["plan_p95_s"] <= GOAL_PLAN_P95_S else "MISSED"),
    ]
    report(rows, figures, args.json)


def measure(args, engine: sa.Engine, receiver: str, secret: str, database) -> dict:
    from simulator.utility import DrCall, signed_request

    wait(lambda: _healthy(receiver), 120, "the webhook receiver")
    session = requests.Session()
    rng = random.Random(args.seed)
    facility_ids = [f"FAC-{i:04d}" for i in range(1, args.facilities + 1)]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=14, minute=0, second=0, microsecond=0)
    run_tag = f"{datetime.now(UTC):%H%M%S}"

    def call(index: int) -> DrCall:
        start = tomorrow + timedelta(minutes=15 * index)
        return DrCall(f"LAT-{run_tag}-{index:03d}", rng.sample(facility_ids, args.per_event), start, start + timedelta(hours=2), reduction_pct=10)

    def post(body: dict) -> tuple[float, int, float]:
        raw, headers = signed_request(secret, body)
        sent = time.time()
        began = time.perf_counter()
        answer = session.post(f"{receiver}/webhooks/utility/dr-notification", data=raw, headers=headers, timeout=10)
        return (time.perf_counter() - began) * 1000, answer.status_code, sent

    # A first event, not counted: the daemon's first sensor tick and run launch warm up.
    # Before the measured events' window, not after it: the receiver refuses an event more
    # than 7 days ahead, and index 999 (10 days out) was refused with a 422.
    warm = DrCall(f"LAT-{run_tag}-warm", rng.sample(facility_ids, args.per_event), tomorrow - timedelta(hours=3),
                  tomorrow - timedelta(hours=1), reduction_pct=10)
    _, status, _ = post(warm.body())
    if status != 202:
        raise SystemExit(f"the receiver answered {status} to the warm-up event")
    wait(lambda: _planned(engine, [warm.event_id]), 180, "the warm-up event's plan")
    print("warm-up event planned; sending the measured events", flush=True)

    healthz = []
    for _ in range(50):
        began = time.perf_counter()
        session.get(f"{receiver}/healthz", timeout=5)
        healthz.append((time.perf_counter() - began) * 1000)

    acks, sent_at, redeliveries = [], {}, 0
    for index in range(args.events):
        event = call(index)
        ack_ms, status, sent = post(event.body())
        if status != 202:
            raise SystemExit(f"the receiver answered {status} to {event.event_id}")
        acks.append(ack_ms)
        sent_at[event.event_id] = sent
        if index % 5 == 4:
            ack_ms, status, _ = post(event.body())  # the utility redelivers: same event, same version
            acks.append(ack_ms)
            redeliveries += 1
        time.sleep(args.spacing)
    try:
        planned = wait(lambda: _planned(engine, list(sent_at)), 600, "every plan")
    except SystemExit as timeout:
        # The figures still say how far it got: an event not planned counts as planned
        # at the timeout in the percentiles, and as a version not planned.
        print(timeout, flush=True)
        planned = _planned(engine, list(sent_at), partial=True)
    now = time.time()
    plan_s = [planned.get(event_id, now) - sent for event_id, sent in sent_at.items()]
    stages, runs = stage_seconds(engine, sent_at)
    burst = measure_burst(args, engine, post, facility_ids, tomorrow, run_tag, rng) if args.burst else {}

    with engine.connect() as conn:
        stored = conn.scalar(sa.text("select count(*) from ops.dr_events where event_id = any(:ids)"), {"ids": list(sent_at)})
        plans = conn.scalar(sa.text(
            "select count(distinct (event_id, version)) from marts.fct_dr_reduction_plan where event_id = any(:ids)"
        ), {"ids": list(sent_at)})
    return {
        "events": len(sent_at),
        "redeliveries": redeliveries,
        "stored": stored,
        "plans": plans,
        "ack_p50_ms": round(statistics.median(acks), 2),
        "ack_p99_ms": round(percentile(acks, 99), 2),
        "healthz_p50_ms": round(statistics.median(healthz), 2),
        "plan_p50_s": round(statistics.median(plan_s), 2),
        "plan_p95_s": round(percentile(plan_s, 95), 2),
        "stages_p50_s": {stage: round(statistics.median(values), 2) for stage, values in stages.items() if values},
        "stages_max_s": {stage: round(max(values), 2) for stage, values in stages.items() if values},
        "runs": runs,
        "in_process_plan_s": round(in_process_plan(database, engine, next(iter(sent_at))), 3),
        **burst,
    }


def measure_burst(args, engine: sa.Engine, post, facility_ids: list[str], tomorrow: datetime, run_tag: str, rng) -> dict:
    """--burst distinct events sent as fast as 8 connections go (a utility notifying a
    whole programme at once): seconds from the first POST until every one is planned."""
    from concurrent.futures import ThreadPoolExecutor

    from simulator.utility import DrCall

    calls = [
        DrCall(f"BURST-{run_tag}-{index:04d}", rng.sample(facility_ids, args.per_event),
               tomorrow + timedelta(minutes=15 * (index % 40)), tomorrow + timedelta(minutes=15 * (index % 40) + 60), reduction_pct=10)
        for index in range(args.burst)
    ]
    began = time.time()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda call: post(call.body())[1], calls))
    sent_s = time.time() - began
    refused = sum(1 for status in statuses if status != 202)
    ids = [call.event_id for call in calls]
    print(f"burst: {len(calls)} events sent in {sent_s:.1f} s ({refused} not answered 202); waiting for the plans", flush=True)
    try:
        planned = wait(lambda: _planned(engine, ids), 900, "every plan of the burst", interval=1.0)
        planned_s = max(planned.values()) - began
    except SystemExit as timeout:
        print(timeout, flush=True)
        planned, planned_s = _planned(engine, ids, partial=True), None
    runs = burst_runs(began)
    for run in runs:
        print("burst run " + ", ".join(f"{name} {value}" for name, value in run.items()), flush=True)
    return {"burst_events": len(calls), "burst_refused": refused, "burst_send_s": round(sent_s, 1),
            "burst_planned": len(planned), "burst_planned_s": None if planned_s is None else round(planned_s, 1),
            "burst_runs": runs}


def burst_runs(began: float) -> list[dict]:
    """The plan runs of the burst, seconds after its first POST: when each was requested,
    dequeued, started and its steps began and it ended, and how many events it planned."""
    from dagster import DagsterEventType, DagsterInstance, RunsFilter

    instance = DagsterInstance.from_config(str(Path(os.environ["WATTLINE_HOME"]) / "dagster"))
    try:
        runs = []
        for record in instance.get_run_records(RunsFilter(job_name="dr_plan_job")):
            created = record.create_timestamp.replace(tzinfo=record.create_timestamp.tzinfo or UTC).timestamp()
            if created < began:
                continue
            times, steps = {}, []
            for event in instance.all_logs(record.dagster_run.run_id, of_type={
                DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START, DagsterEventType.STEP_START,
                DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE,
            }):
                if event.dagster_event_type == DagsterEventType.STEP_START:
                    steps.append(event.timestamp)
                else:
                    times[event.dagster_event_type] = event.timestamp

            def at(timestamp: float | None) -> str:
                return "–" if timestamp is None else f"+{timestamp - began:.0f}"

            runs.append({
                "events": int(record.dagster_run.tags.get("wattline/dr_events", 1)),
                "requested": at(created),
                "dequeued": at(times.get(DagsterEventType.RUN_STARTING)),
                "started": at(times.get(DagsterEventType.RUN_START)),
                "steps": " ".join(at(t) for t in sorted(steps)),
                "ended": at(times.get(DagsterEventType.RUN_SUCCESS, times.get(DagsterEventType.RUN_FAILURE))),
            })
        return sorted(runs, key=lambda run: float(run["requested"]))
    finally:
        instance.dispose()


STAGES = ("stored", "sensor", "queued", "launch", "to first step", "baseline", "plan")


def stage_seconds(engine: sa.Engine, sent_at: dict[str, float]) -> tuple[dict[str, list[float]], int]:
    """Where each event's seconds went, from the inbox and the instance's run records:
    stored (POST sent → row in the inbox), sensor (→ run requested), queued (→ run
    dequeued and launched), launch (→ the run's process started), to first step (→ the
    baseline's step started: resources, run events), baseline (→ the plan's step
    started), plan (→ the plan committed); and the runs."""
    from dagster import DagsterEventType, DagsterInstance, RunsFilter

    from orchestration.partitions import dr_partition_key

    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select event_id, version, extract(epoch from received_at), extract(epoch from planned_at) "
            "from ops.dr_events where event_id = any(:ids)"
        ), {"ids": list(sent_at)}).all()
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    run_ids = set()
    instance = DagsterInstance.from_config(str(Path(os.environ["WATTLINE_HOME"]) / "dagster"))
    try:
        partitions = instance.get_dynamic_partitions("dr_events")
        position = {key: index for index, key in enumerate(partitions)}
        runs = []
        for record in instance.get_run_records(RunsFilter(job_name="dr_plan_job")):
            tags = record.dagster_run.tags
            first = tags.get("dagster/partition") or tags.get("dagster/asset_partition_range_start")
            last = tags.get("dagster/partition") or tags.get("dagster/asset_partition_range_end")
            if first in position and last in position:
                runs.append((position[first], position[last], record))
        for event_id, version, received, planned in rows:
            index = position.get(dr_partition_key(event_id, version))
            record = next((r for lo, hi, r in runs if index is not None and lo <= index <= hi), None)
            if record is None or planned is None:
                continue
            times, steps = {}, []
            for event in instance.all_logs(record.dagster_run.run_id, of_type={
                DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START, DagsterEventType.STEP_START,
            }):
                if event.dagster_event_type == DagsterEventType.STEP_START:
                    steps.append(event.timestamp)
                else:
                    times[event.dagster_event_type] = event.timestamp
            created = record.create_timestamp.replace(tzinfo=record.create_timestamp.tzinfo or UTC).timestamp()
            starting = times.get(DagsterEventType.RUN_STARTING)
            started = times.get(DagsterEventType.RUN_START)
            if starting is None or started is None or len(steps) < 2:
                continue
            stages["stored"].append(float(received) - sent_at[event_id])
            stages["sensor"].append(created - float(received))
            stages["queued"].append(starting - created)
            stages["launch"].append(started - starting)
            stages["to first step"].append(min(steps) - started)
            stages["baseline"].append(max(steps) - min(steps))
            stages["plan"].append(float(planned) - max(steps))
            run_ids.add(record.dagster_run.run_id)
    finally:
        instance.dispose()
    return stages, len(run_ids)


def in_process_plan(database, engine: sa.Engine, event_id: str) -> float:
    """Median of 3 materialisations of one event's baseline + plan in this process."""
    from dagster import DagsterInstance, materialize

    from assets.demand_response import dr_baseline, dr_reduction_plan
    from orchestration.partitions import dr_partition_key
    from resources.postgres import PostgresResource

    with engine.connect() as conn:
        version = conn.scalar(sa.text("select version from ops.dr_events where event_id = :e"), {"e": event_id})
    key = dr_partition_key(event_id, version)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("dr_events", [key])
    times = []
    for _ in range(3):
        began = time.perf_counter()
        result = materialize([dr_baseline, dr_reduction_plan], partition_key=key, instance=instance,
                             resources={"postgres": PostgresResource(url=database.url)}, raise_on_error=True)
        times.append(time.perf_counter() - began)
        assert result.success
    return statistics.median(times)


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).ok
    except requests.RequestException:
        return False


def _planned(engine: sa.Engine, event_ids: list[str], partial: bool = False) -> dict | None:
    """Each event's planned_at as Unix seconds, once every event has one (`partial`: those that have)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select event_id, extract(epoch from planned_at) from ops.dr_events "
            "where event_id = any(:ids) and planned_at is not null"
        ), {"ids": event_ids}).all()
    return {e: float(t) for e, t in rows} if partial or len(rows) == len(event_ids) else None


if __name__ == "__main__":
    main()
