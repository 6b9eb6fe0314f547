"""The soak: `wattline up` on an empty warehouse at 5,000 meters × 10-second readings,
left to its schedules and automation for --minutes while faults are injected, then
audited to the row.

The simulator runs in its own process with a share of corrupted readings
(--bad-row-rate: negative, NaN, out-of-range, future, duplicated and unknown-meter
rows). While the platform runs, the soak:

- sets faults in every feed: 503 and 500 bursts, 429 with Retry-After, a response
  slower than the clients' read timeout, cut bodies; within the retry budget at the
  start, and one beyond it later (that run fails; a run retry must load the hour);
- sends --webhooks signed DR webhooks as fast as 8 connections go (15 % redeliveries,
  15 % revisions) and --hostile forged, unsigned, replayed and tampered ones;
- kills a telemetry run's worker mid-load (SIGKILL, as an out-of-memory kill would);
- restarts PostgreSQL (fast shutdown: every session is cut);
- samples how far the newest reading in raw lags real time.

Then it clears the faults, lets the platform settle (failed runs retried, marts rebuilt
after the last load, no run left), stops it and audits: telemetry rows expected from the
simulator's deterministic generator against loaded + quarantined, with none lost,
none twice and each corrupted row under the rule it breaks; every failed run followed
by a successful one of its job and partition; DR event versions stored and planned
once each, nothing stored for a refused request; hourly kWh in the marts equal to the
raw readings'; the alerts raised.

`--short` is 3 minutes (the test suite runs a smaller one still). `--json FILE` writes
every figure. Exit status 1 when the audit finds a row lost, duplicated or quarantined
under the wrong rule, a failed run not recovered, an event version not planned or
planned twice, a refused webhook stored, or marts that disagree with raw.
"""

import argparse
import base64
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import requests
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

import soak_audit
import soak_inject
from _report import report
from bench_support import free_port, fresh_database, isolate, simulator

READ_TIMEOUT_S = 10.0  # the feeds' read timeout during the soak: a slow fault outlasts it
RETRIES = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="how long faults are injected while automation runs")
    parser.add_argument("--short", action="store_true", help="3 minutes")
    parser.add_argument("--meters", type=int, default=5000)
    parser.add_argument("--interval-s", type=int, default=10)
    parser.add_argument("--bad-row-rate", type=float, default=0.001)
    parser.add_argument("--webhooks", type=int, default=1000, help="signed DR webhooks in the burst")
    parser.add_argument("--hostile", type=int, default=100, help="forged, unsigned, replayed and tampered webhooks")
    parser.add_argument("--settle-minutes", type=float, default=10.0, help="longest wait for the platform to catch up after the faults")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.short:
        args.minutes = 3.0

    isolate()
    # A SIGTERM (a supervisor's stop, a timeout) cleans up as Ctrl-C does: the platform,
    # the simulator, the databases and the server the soak started are all stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    from orchestration.settings import get_settings
    from simulator.bms_api import DISPATCH_PATH
    from simulator.fleet import build_fleet, facilities_for_meters
    from simulator.readings import ReadingGenerator

    facilities = facilities_for_meters(args.seed, args.meters)
    fleet = build_fleet(args.seed, facilities, args.interval_s)
    generator = ReadingGenerator(fleet, args.interval_s, args.bad_row_rate)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    home = Path(os.environ["WATTLINE_HOME"])
    restartable = not get_settings().database_url
    log = home / "logs" / "soak-up.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"soak: {len(fleet.meters):,} meters ({facilities} facilities) × {args.interval_s} s readings, "
          f"{args.minutes:g} min of faults; platform output: {log}", flush=True)

    with (
        fresh_database() as warehouse,
        fresh_database() as storage,
        simulator(facilities, args.interval_s, seed=args.seed, bad_row_rate=args.bad_row_rate) as sim_url,
    ):
        soak_inject.set_faults(sim_url, soak_inject.faults_within_budget(READ_TIMEOUT_S))
        ui_port, webhook_port = free_port(), free_port()
        env = {
            **os.environ,
            "WATTLINE_DATABASE_URL": warehouse.url,
            "WATTLINE_DAGSTER_DATABASE_URL": storage.url,
            "WATTLINE_WEBHOOK_SECRET": secret,
            "WATTLINE_UI_PORT": str(ui_port),
            "WATTLINE_WEBHOOK_PORT": str(webhook_port),
            "WATTLINE_HTTP_TIMEOUT_S": str(READ_TIMEOUT_S),
            "WATTLINE_HTTP_RETRIES": str(RETRIES),
            "WATTLINE_BMS_URL": f"{sim_url}{DISPATCH_PATH}",
            **{f"WATTLINE_{name}": sim_url for name in ("TELEMETRY_API_URL", "WEATHER_API_URL", "PRICE_API_URL", "CARBON_API_URL")},
        }
        env.pop("DAGSTER_HOME", None)
        engine = sa.create_engine(warehouse.sqlalchemy_url, pool_pre_ping=True)
        started = datetime.now(UTC)
        with log.open("w") as output:
            up = subprocess.Popen(
                [sys.executable, "-m", "orchestration.cli", "up"], cwd=REPO, env=env, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            figures = soak(args, engine, generator, fleet, sim_url, f"http://127.0.0.1:{webhook_port}",
                           f"http://127.0.0.1:{ui_port}", secret, home, restartable, started, up)
        finally:
            stop(up)
            engine.dispose()
    rows = [
        ("telemetry rows expected", f"{figures['rows_expected']:,}"),
        ("  loaded", f"{figures['rows_loaded']:,}"),
        ("  quarantined", f"{figures['rows_quarantined']:,}"),
        ("  lost", f"{figures['rows_lost']:,}"),
        ("  duplicated", f"{figures['rows_duplicated']:,}"),
        ("  corrupted / quarantined under another rule", f"{sum(figures['corrupted_by_rule'].values()):,} / {figures['rows_misjudged']:,}"),
        ("runs (failed / not recovered)", f"{figures['runs']} ({figures['runs_failed']} / {len(figures['failed_not_recovered'])})"),
        ("run retries", f"{figures['retried_runs']}"),
        ("DR webhooks sent (redelivered, revised)", f"{figures['webhooks_sent']} ({figures['redeliveries']}, {figures['revisions']})"),
        ("DR event versions valid / accepted", f"{figures['events_valid']} / {figures['events_accepted']}"),
        ("  planned / double plans", f"{figures['plans']} / {figures['double_plans']}"),
        ("  burst fully planned after, s", "not all planned" if figures["burst_planned_s"] is None else f"{figures['burst_planned_s']:.0f}"),
        ("  ack p50 / p99, ms", f"{figures['ack_p50_ms']} / {figures['ack_p99_ms']}"),
        ("hostile webhooks sent / stored", f"{figures['hostile_sent']} / {figures['rejected_webhooks_stored']}"),
        ("facility-hours marts ≠ raw", f"{figures['facility_hours_mismatched']} of {figures['facility_hours_compared']}"),
        ("  marts behind raw (lag)", f"{figures['facility_hours_behind']}"),
        ("  closed hour awaiting its :20 settlement", f"{figures['facility_hours_awaiting_settlement']}"),
        ("alerts raised", f"{figures['alerts_raised']}"),
        ("max lag of newest reading, s", f"{figures['max_lag_s']:.0f}"),
        ("settled after, s", f"{figures['settle_s']:.0f}"),
        ("postgres restart, s down", f"{figures['postgres_restart_s']}"),
        ("run worker killed", "yes" if figures["worker_kill"].get("killed") else f"no: {figures['worker_kill'].get('reason')}"),
    ]
    report(rows, figures, args.json)
    for name in ("failed_runs", "failed_not_recovered", "unexpected_answers", "mismatches", "behind"):
        if figures.get(name):
            print(f"{name}: {figures[name]}")
    clean = (figures["rows_lost"] == 0 and figures["rows_duplicated"] == 0 and figures["rows_misjudged"] == 0
             and figures["double_plans"] == 0
             and figures["rejected_webhooks_stored"] == 0 and not figures["failed_not_recovered"]
             and figures["plans"] == figures["events_valid"] == figures["events_accepted"]
             and figures["facility_hours_mismatched"] == 0)
    sys.exit(0 if clean else 1)


def soak(args, engine, generator, fleet, sim_url, receiver, ui_url, secret, home, restartable, started, up) -> dict:
    from dagster import DagsterInstance

    wait(lambda: _answers(f"{ui_url}/server_info") and _answers(f"{receiver}/healthz"), 240, "the platform to start", up)
    instance = DagsterInstance.from_config(str(home / "dagster"))
    # A utility calls events for facilities the platform knows: the clock starts once the
    # automation has loaded the registry (the receiver refuses unknown facilities, 422).
    wait(lambda: _registered(engine) >= len(fleet.facilities), 300, "the automation to load the registry", up)
    lag = LagSampler(engine, generator.interval_s)
    lag.start()
    ledger = soak_inject.WebhookLedger()
    facility_ids = [f.facility_id for f in fleet.facilities]
    duration = args.minutes * 60
    began = time.monotonic()
    figures: dict = {"postgres_restart_s": "skipped (a configured server)", "worker_kill": {"reason": "not reached"}}

    def at(fraction: float) -> None:
        time.sleep(max(0.0, began + fraction * duration - time.monotonic()))

    print("platform up; injecting", flush=True)
    at(0.15)
    burst_began = datetime.now(UTC)
    soak_inject.dr_burst(receiver, secret, facility_ids, args.webhooks, args.seed, ledger)
    print(f"  DR burst: {ledger.deliveries} webhooks, answers {dict(ledger.answers)}", flush=True)
    soak_inject.hostile_burst(receiver, secret, facility_ids, args.hostile, ledger)
    print(f"  hostile: {dict(ledger.hostile_answers)}", flush=True)
    at(0.35)
    # Beyond the retry budget: the next readings request fails its run.
    soak_inject.set_faults(sim_url, [soak_inject.fault_past_budget(RETRIES)])
    launch_open_hour(ui_url)
    at(0.55)
    # The next readings body stalls halfway (within the read timeout): the kill lands mid-COPY.
    soak_inject.set_faults(sim_url, [soak_inject.STALL])
    figures["worker_kill"] = soak_inject.kill_run_worker(instance, launch_open_hour(ui_url))
    print(f"  run worker: {figures['worker_kill']}", flush=True)
    at(0.75)
    if restartable:
        figures["postgres_restart_s"] = round(soak_inject.restart_postgres(home), 1)
        print(f"  PostgreSQL restarted ({figures['postgres_restart_s']} s down)", flush=True)
    at(1.0)
    figures["fault_hits"] = soak_inject.fault_hits(sim_url)
    requests.delete(f"{sim_url}/v1/sim/faults", timeout=10)
    print("faults over; settling", flush=True)

    settle_began = reported = time.monotonic()
    faults_over = datetime.now(UTC)
    expected_plans = ledger.events_valid
    while True:
        marts = soak_audit.marts_match_raw(engine, started)
        # Every failure so far recovered, and every run of the fault period finished; the
        # runs the automation starts from here on are the live platform at work (one in
        # flight does not keep the soak from settling, and the stop below interrupts it).
        run_state = {**soak_audit.runs(instance, started),
                     "runs_unfinished": soak_audit.runs(instance, started, until=faults_over)["runs_unfinished"]}
        state = {**run_state, **marts}
        planned = soak_audit.demand_response(engine, instance, ledger)["plans"]
        settled = (not state["runs_unfinished"] and not state["failed_not_recovered"]
                   and state["facility_hours_mismatched"] == 0 and state["facility_hours_behind"] == 0
                   and planned >= expected_plans)
        if settled or time.monotonic() - settle_began > args.settle_minutes * 60:
            break
        if time.monotonic() - reported > 30:
            # What the platform is still catching up on: a soak that does not settle says why.
            print(f"  settling: runs unfinished {state['runs_unfinished'][:5]}, not recovered "
                  f"{state['failed_not_recovered']}, facility-hours behind {state['facility_hours_behind']} "
                  f"{state['behind'][:2]}, mismatched {state['facility_hours_mismatched']}, "
                  f"plans {planned}/{expected_plans}", flush=True)
            reported = time.monotonic()
        time.sleep(5)
    figures["settle_s"] = time.monotonic() - settle_began
    figures["settled"] = settled
    stop(up)
    lag.stop()
    until = datetime.now(UTC)

    figures.update(soak_audit.telemetry(engine, generator, started, until))
    # Runs and marts as they stood when the platform had caught up: the stop interrupts the
    # runs in flight then, and a reload after it whose rebuild the stop cut short is the
    # soak's doing, not a failure the platform should have recovered from.
    figures.update(run_state)
    figures.update(marts)
    figures.update(soak_audit.demand_response(engine, instance, ledger))
    figures["burst_planned_s"] = soak_audit.burst_planned_s(engine, ledger, burst_began)
    figures.update(soak_audit.alerts(engine, started))
    figures.update({"max_lag_s": lag.max_lag_s, "lag_samples": lag.samples, "minutes": args.minutes,
                    "meters": len(fleet.meters), "interval_s": generator.interval_s})
    instance.dispose()
    return figures


def launch_open_hour(ui_url: str) -> str:
    """Reload the open telemetry hour as an operator would from the UI; the run id."""
    from dagster_graphql import DagsterGraphQLClient

    from orchestration.automation import open_hours

    host, port = ui_url.removeprefix("http://").split(":")
    client = DagsterGraphQLClient(host, port_number=int(port))
    return client.submit_job_execution("telemetry_job", tags={"dagster/partition": open_hours(datetime.now(UTC))[-1]})


class LagSampler(threading.Thread):
    """Every 5 s: how far the newest reading in raw lags real time (the end of its interval)."""

    def __init__(self, engine: sa.Engine, interval_s: int):
        super().__init__(daemon=True)
        self.engine, self.interval_s = engine, interval_s
        self.max_lag_s, self.samples = 0.0, 0
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(5):
            try:
                with self.engine.connect() as conn:
                    newest = conn.scalar(sa.text(
                        # The last two hours' partitions only: the rest cannot hold the newest.
                        "select extract(epoch from now() - max(ts)) from raw.meter_readings where ts > now() - interval '2 hours'"
                    ))
            except sa.exc.SQLAlchemyError:
                continue  # the database restart: the lag shows in the next sample
            if newest is not None:
                self.samples += 1
                self.max_lag_s = max(self.max_lag_s, float(newest) - self.interval_s)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=30)


def wait(predicate, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"wattline up exited ({process.returncode}) while waiting for {what}")
        if predicate():
            return
        time.sleep(1)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def _registered(engine: sa.Engine) -> int:
    try:
        with engine.connect() as conn:
            return conn.scalar(sa.text("select count(*) from raw.facilities where active"))
    except sa.exc.SQLAlchemyError:
        return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def stop(up: subprocess.Popen) -> None:
    if up.poll() is None:
        up.terminate()
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()


if __name__ == "__main__":
    main()
