"""`wattline demo`: the whole platform end to end on this machine.

Bootstraps the runtime, serves the simulator as the outside world, backfills the
last days through the real asset graph (Dagster runs recorded in the instance, so
the UI shows them), builds the models, prints a summary and optionally serves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from orchestration.backfill import backfill, backfill_window, run_metadata, run_output
from orchestration.progress import Steps
from orchestration.settings import WattlineSettings, get_settings


def summary(engine: sa.Engine, start: datetime, end: datetime) -> dict:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select count(*) from raw.meter_readings where ts >= :s and ts < :e"),
            {"s": start, "e": end},
        ).scalar_one()
        latest = conn.execute(
            sa.text(
                """
                select distinct on (facility_id)
                    facility_id, interval_start, avg_kw, data_completeness
                from marts.fct_load_15min
                where interval_start >= :s and interval_end <= least(:e, now()) and data_completeness >= 1
                order by facility_id, interval_start desc
                """
            ),
            {"s": start, "e": end},
        ).all()
        forecasts = conn.execute(
            sa.text(
                """
                select b.facility_id, b.status, b.reason, b.cv_rmse_pct, b.nmbe_pct, peak.interval_start, peak.yhat_kw,
                       peak.yhat_lower_80_kw, peak.yhat_upper_80_kw
                from marts.fct_load_forecast_backtest b
                left join lateral (
                    select interval_start, yhat_kw, yhat_lower_80_kw, yhat_upper_80_kw
                    from marts.fct_load_forecast f
                    where f.facility_id = b.facility_id
                    order by yhat_kw desc
                    limit 1
                ) peak on true
                where b.trained_through = (select max(trained_through) from marts.fct_load_forecast_backtest)
                order by b.facility_id
                """
            )
        ).all() if conn.scalar(sa.text("select to_regclass('marts.fct_load_forecast_backtest')")) else []
    return {"rows": rows, "latest": latest, "forecasts": forecasts}


def print_forecasts(forecasts) -> None:
    if not forecasts:
        print("No load forecast was made.")
        return
    print("Forecast peak in the next 48 hours per facility (marts.fct_load_forecast), with the backtest's accuracy:")
    print(f"  {'facility':<12} {'peak hour (UTC)':<18} {'kW (80 % interval)':<26} {'CV(RMSE)':>9} {'NMBE':>7}")
    for row in forecasts:
        if row.status != "forecast":
            print(f"  {row.facility_id:<12} {row.status}: {row.reason}")
            continue
        interval = f"{row.yhat_kw:.1f} ({row.yhat_lower_80_kw:.1f}–{row.yhat_upper_80_kw:.1f})"
        print(f"  {row.facility_id:<12} {row.interval_start:%Y-%m-%d %H:%M}   {interval:<26} {row.cv_rmse_pct:>8.1f}% {row.nmbe_pct:>6.1f}%")


DEMO_EVENT_LEAD = timedelta(minutes=30)  # notice for every catalogue action but pre-cooling's 90 min
DEMO_EVENT_FACILITIES = 3


def webhook_secret(settings: WattlineSettings) -> tuple[str, bool]:
    """The Standard Webhooks secret the demo's utility signs with and the receiver
    checks: the configured one, or one made for this process (and the platform it serves,
    which inherits the environment). Never stored: set WATTLINE_WEBHOOK_SECRET to keep one."""
    import base64
    import os
    import secrets

    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value(), False
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    os.environ["WATTLINE_WEBHOOK_SECRET"] = secret
    get_settings.cache_clear()
    return secret, True


def call_demo_event(instance, warehouse_url: str, secret: str, facilities: int, now: datetime):
    """What a utility and the platform do with a DR event, in this process: the signed
    webhook to the receiver (served on loopback for the call), then the DR sensor's
    evaluation and the plan run it requests, tagged as the daemon tags them so `wattline
    up` does not plan it again. Returns (event id, version, start, end, ack ms, plan s)."""
    import time

    from dagster import build_sensor_context

    from orchestration.partitions import dr_event_version
    from orchestration.runs import run_job
    from resources.postgres import PostgresResource
    from sensors.dr_sensor import dr_events_sensor
    from sensors.webhook_app import ReceiverConfig, create_app
    from simulator.server import BackgroundServer
    from simulator.utility import DrCall, call_event, next_quarter_hour

    start = next_quarter_hour(now, DEMO_EVENT_LEAD)
    call = DrCall(
        event_id=f"DEMO-{now:%Y%m%dT%H%M%S}",
        facility_ids=[f"FAC-{i:04d}" for i in range(1, min(facilities, DEMO_EVENT_FACILITIES) + 1)],
        start=start,
        end=start + timedelta(hours=1),
        reduction_pct=10,
    )
    receiver = BackgroundServer(create_app(ReceiverConfig(warehouse_url, webhook_secret=secret))).start()
    try:
        sent = time.monotonic()
        answer = call_event(receiver.url, secret, call)
        ack_ms = (time.monotonic() - sent) * 1000
    finally:
        receiver.stop()
    if answer.status_code != 202:
        raise RuntimeError(f"the receiver refused the demo event: {answer.status_code} {answer.text}")
    # The evaluation starts just before this event: events an earlier demo or a utility left
    # in the inbox are the served platform's DR sensor's to plan, from its own cursor, and
    # never join this event's run.
    cursor = str(answer.json()["inbox_id"] - 1)
    with build_sensor_context(
        instance=instance, resources={"postgres": PostgresResource()}, sensor_name=dr_events_sensor.name, cursor=cursor,
    ) as context:
        result = dr_events_sensor(context)
    for request in getattr(result, "dynamic_partitions_requests", None) or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    requests = [r for r in getattr(result, "run_requests", None) or [] if r.tags.get("wattline/dr_event") == call.event_id]
    if not requests:
        why = getattr(result, "skip_message", None) or "its requests name other events"
        raise RuntimeError(f"the DR sensor requested no plan for {call.event_id}: {why}")
    for request in requests:
        run = run_job(
            "dr_plan_job", instance, partition_key=request.partition_key,
            tags={**request.tags, "dagster/sensor_name": dr_events_sensor.name, "dagster/run_key": request.run_key},
        )
        if not run.success:
            raise RuntimeError(f"the plan run {run.run_id[:8]} for {request.partition_key} failed")
    plan_s = time.monotonic() - sent
    _, version = dr_event_version(requests[-1].partition_key)
    return call.event_id, version, call.start, call.end, ack_ms, plan_s


def print_dr_plan(engine: sa.Engine, event_id: str, version: str) -> None:
    """The event's headline (ops.dr_events) and one row per facility, both from the
    plan's statement plan_by_facility: the rows add up to the headline."""
    from resources.sql_files import statements

    with engine.connect() as conn:
        event = conn.execute(sa.text(
            "select status, status_reason, target_kwh, planned_shed_kwh, shortfall_kwh, event_start, event_end "
            "from ops.dr_events where event_id = :e and version = :v"
        ), {"e": event_id, "v": version}).one()
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute(statements("dr_tables.sql")["plan_by_facility"], {"event_id": event_id, "version": version})
        figures = {facility_id: (target, shed, short) for facility_id, target, shed, short in cursor.fetchall()}
        cursor.close()
        rows = conn.execute(sa.text(
            """
            select facility_id, string_agg(distinct action_id, ', ') filter (where phase = 'event') as actions,
                   min(interval_start) as first_interval
            from marts.fct_dr_reduction_plan
            where event_id = :e and version = :v
            group by facility_id order by facility_id
            """
        ), {"e": event_id, "v": version}).all()
    print(
        f"DR event {event_id} ({event.event_start:%H:%M}–{event.event_end:%H:%M} UTC, 10 % of baseline): "
        f"{event.status}, {event.planned_shed_kwh:.1f} of {event.target_kwh:.1f} kWh planned"
        + (f" — {event.status_reason}" if event.status_reason else "")
    )
    print(f"  {'facility':<12} {'plan starts (UTC)':<18} {'target kWh':>10} {'kWh shed':>9} {'short kWh':>9}  actions")
    for row in rows:
        target, shed, short = figures.get(row.facility_id, (0.0, 0.0, 0.0))
        print(
            f"  {row.facility_id:<12} {row.first_interval:%Y-%m-%d %H:%M}  {target:>10.1f} {shed:>9.1f} {short:>9.1f}  "
            f"{row.actions or '–'}"
        )
    print("  (kWh shed: in the event window, net of the load actions give back in it)")


def run_demo(facilities: int, days: int, serve: bool, settings: WattlineSettings | None = None) -> int:
    from dagster import DagsterInstance

    from orchestration.runs import run_job
    from orchestration.runtime import bootstrap, serve_unset_sources
    from orchestration.serve import serve_forever
    from resources.dbt import prepare_manifest
    from simulator.config import SimulatorConfig
    from simulator.server import SimulatorServer

    settings = settings or get_settings()
    steps = Steps(total=9)
    with steps.step("Starting PostgreSQL and the Dagster instance"):
        runtime = bootstrap(settings)
        where = "embedded server" if runtime.warehouse.embedded else "WATTLINE_DATABASE_URL"
        steps.detail(f"warehouse: {runtime.warehouse.redacted_url} ({where})")
        steps.detail(f"DAGSTER_HOME: {runtime.dagster_home}")
    with steps.step("Preparing the dbt manifest"):
        prepare_manifest()
    with steps.step(f"Starting the simulator ({facilities} facilities, {settings.sim_interval_s} s readings)"):
        sim = SimulatorServer(
            SimulatorConfig(seed=settings.sim_seed, facilities=facilities, interval_s=settings.sim_interval_s),
            port=settings.sim_port if serve else 0,
        ).start()
        served = serve_unset_sources(settings, sim.url)
        steps.detail(f"simulator: {sim.url} (serving {', '.join(served) or 'no feed: all sources configured'})")

    log_path = settings.home / "logs" / f"demo-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    try:
        instance = DagsterInstance.get()
        start, end = backfill_window(days, datetime.now(UTC))
        steps.detail(f"run output (dbt, Dagster events): {log_path}")
        backfill(instance, start, end, steps, log_path, registry=True)
        with steps.step("Forecasting each facility's load 48 hours ahead (Prophet, backtested on the last week)"), run_output(log_path):
            result = run_job("load_forecast_job", instance)
            counts = {key: run_metadata(result, f"facilities_{key}", asset="marts/fct_load_forecast") for key in ("forecast", "skipped", "failed")}
            steps.detail(
                f"{counts['forecast']} forecast, {counts['skipped']} skipped (too little history), "
                f"{counts['failed']} failed (run {result.run_id[:8]})"
            )
        with steps.step("Calling a demand-response event: signed webhook → inbox → DR sensor → plan run"), run_output(log_path):
            secret, generated = webhook_secret(settings)
            event_id, version, _start, event_end, ack_ms, plan_s = call_demo_event(
                instance, runtime.warehouse.sqlalchemy_url, secret, facilities, datetime.now(UTC)
            )
            steps.detail(f"{event_id}: acknowledged in {ack_ms:.0f} ms, planned {plan_s:.1f} s after the call")
            if generated:
                steps.detail("signed with a webhook secret made for this session (set WATTLINE_WEBHOOK_SECRET to keep one)")
        with steps.step("Summarising"):
            engine = sa.create_engine(runtime.warehouse.sqlalchemy_url)
            report = summary(engine, start, end)

        print()
        print(f"Readings loaded: {report['rows']:,}   Facilities: {len(report['latest'])}")
        print("Latest complete 15-minute load per facility (marts.fct_load_15min):")
        print(f"  {'facility':<12} {'interval start (UTC)':<22} {'avg kW':>10} {'complete':>9}")
        for row in report["latest"]:
            print(
                f"  {row.facility_id:<12} {row.interval_start:%Y-%m-%d %H:%M}       "
                f"{row.avg_kw:>10.1f} {row.data_completeness:>8.0%}"
            )
        print()
        print_forecasts(report["forecasts"])
        print()
        print_dr_plan(engine, event_id, version)
        engine.dispose()
        if serve:
            print(
                f"  While the platform serves: dispatch to the simulated BMS as the plan begins, then after "
                f"{event_end:%H:%M} UTC its performance in marts.fct_dr_event_performance."
            )
        print()
        # A configured URL may carry a password: point at the variable, never echo it.
        target = f"'{runtime.warehouse.url}'" if runtime.warehouse.embedded else '"$WATTLINE_DATABASE_URL"'
        print(f"Query it: psql {target} -c 'select * from marts.fct_load_15min limit 5'")
        if not serve:
            return 0
        return serve_forever(settings)
    finally:
        sim.stop()
