"""From the inbox to a baseline: the DR sensor turns each new event version into a
dynamic partition and a run request keyed by event and version, and the baseline asset
run on that partition writes each facility's 15-minute baseline, the 10-in-10 CBL
checked here against the same average computed in SQL on the facility's wall clock."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, SkipReason, build_sensor_context, materialize

from assets.demand_response import dr_baseline
from assets.forecasting import load_forecast
from orchestration.partitions import dr_event_version, dr_partition_key
from resources.postgres import PostgresResource
from resources.sql_files import statements
from sensors.dr_sensor import BATCH, PLAN_RUNS, dr_events_sensor
from tests.conftest import FLEET_END, add_dr_event, dr_run, own_warehouse, undocumented_columns, wait_for


def evaluate(database, cursor, instance=None):
    instance = instance or DagsterInstance.ephemeral()
    with build_sensor_context(instance=instance, cursor=cursor, resources={"postgres": PostgresResource(url=database.url)}) as context:
        return dr_events_sensor(context)


@pytest.fixture
def inbox(pg_server):
    """A new warehouse of its own: the raw tables and the inbox, no models built yet."""
    with own_warehouse(pg_server, "wattline_inbox") as world:
        yield world


def build_plan_inputs(engine) -> None:
    """Stand-ins for the models a plan reads, as the automation's first builds leave them."""
    with engine.begin() as conn:
        for relation in ("marts.dim_facility", "marts.fct_load_15min", "intermediate.int_meter_load_15min", "staging.curtailment_catalogue"):
            conn.execute(sa.text(f"create schema if not exists {relation.split('.')[0]}"))
            conn.execute(sa.text(f"create table {relation} (facility_id text)"))


def test_each_new_event_version_is_one_partition_and_one_run_request(inbox):
    database, engine = inbox
    start = FLEET_END - timedelta(hours=3)
    first = add_dr_event(engine, "SENS-1", "v1", ["F-A"], start, start + timedelta(hours=1))

    # A new warehouse: the event waits in the inbox until the models a plan reads exist.
    waiting = evaluate(database, "0")
    assert isinstance(waiting, SkipReason)
    assert "1 DR event version(s) wait" in waiting.skip_message and "marts.dim_facility" in waiting.skip_message
    build_plan_inputs(engine)

    result = evaluate(database, "0")
    assert [r.run_key for r in result.run_requests] == ["SENS-1@v1"]
    assert [r.partition_key for r in result.run_requests] == ["SENS-1@v1"]
    assert result.run_requests[0].tags["wattline/dr_event"] == "SENS-1"
    [added] = result.dynamic_partitions_requests
    assert added.partitions_def_name == "dr_events" and list(added.partition_keys) == ["SENS-1@v1"]
    assert int(result.cursor) == first

    # Nothing new: nothing requested. A revision is a new version and plans again; a
    # cancellation gets its partition but no run.
    assert isinstance(evaluate(database, result.cursor), SkipReason)
    add_dr_event(engine, "SENS-1", "v2", ["F-A"], start, start + timedelta(hours=2))
    add_dr_event(engine, "SENS-2", "deleted:v1", ["F-A", "F-B"], start, start + timedelta(hours=2), status="cancelled")
    later = evaluate(database, result.cursor)
    assert [r.run_key for r in later.run_requests] == ["SENS-1@v2"]
    assert list(later.dynamic_partitions_requests[0].partition_keys) == ["SENS-1@v2", "SENS-2@deleted:v1"]


def covered(result, keys: list[str]) -> list[str]:
    """The partitions each run request plans, in order: a range is the keys between its ends."""
    out = []
    for request in result.run_requests:
        if request.partition_key_range is None:
            out.append(request.partition_key)
        else:
            out += keys[keys.index(request.partition_key_range.start) : keys.index(request.partition_key_range.end) + 1]
    return out


def test_a_burst_is_planned_in_a_few_runs_of_consecutive_versions(inbox):
    """A thousand events must not be a thousand runs: the new versions share PLAN_RUNS
    runs of consecutive versions (ranges of the partitions added), and a cancellation
    ends a range; each version is in exactly one run."""
    database, engine = inbox
    build_plan_inputs(engine)
    start = FLEET_END - timedelta(hours=3)
    for n in range(30):
        add_dr_event(engine, f"BURST-{n:02d}", "v1", ["F-A"], start, start + timedelta(hours=1))
    add_dr_event(engine, "BURST-00", "deleted:v1", ["F-A"], start, start + timedelta(hours=1), status="cancelled")
    add_dr_event(engine, "BURST-01", "v2", ["F-A"], start, start + timedelta(hours=2))

    result = evaluate(database, "0")
    ranges = [(r.partition_key_range.start, r.partition_key_range.end) if r.partition_key_range else r.partition_key for r in result.run_requests]
    assert PLAN_RUNS == 2 and ranges == [("BURST-00@v1", "BURST-15@v1"), ("BURST-16@v1", "BURST-29@v1"), "BURST-01@v2"]
    assert len({r.run_key for r in result.run_requests}) == 3
    keys = list(result.dynamic_partitions_requests[0].partition_keys)
    assert covered(result, keys) == [k for k in keys if not k.endswith("deleted:v1")]


def test_new_versions_wait_while_a_plan_run_is_queued_then_share_a_run_each_planned_once(inbox):
    """Under load runs start seconds after they are requested: a run per evaluation would
    pile up in the queue. While a plan run is queued new versions wait in the inbox (the
    cursor stays), then go together into the next runs, each version in exactly one run."""
    from dagster import DagsterRun, DagsterRunStatus
    from dagster._core.utils import make_new_run_id

    database, engine = inbox
    build_plan_inputs(engine)
    start = FLEET_END - timedelta(hours=3)
    instance = DagsterInstance.ephemeral()
    add_dr_event(engine, "HOLD-A", "v1", ["F-A"], start, start + timedelta(hours=1))
    first = evaluate(database, "0", instance)
    assert [r.run_key for r in first.run_requests] == ["HOLD-A@v1"]

    # That run waits to start (the daemon created it; queued it would be the same); two
    # more versions arrive, a new event and a revision.
    run_id = make_new_run_id()
    instance.add_run(DagsterRun(job_name="dr_plan_job", run_id=run_id, status=DagsterRunStatus.NOT_STARTED))
    add_dr_event(engine, "HOLD-B", "v1", ["F-A"], start, start + timedelta(hours=1))
    add_dr_event(engine, "HOLD-A", "v2", ["F-A"], start, start + timedelta(hours=2))
    held = evaluate(database, first.cursor, instance)
    assert isinstance(held, SkipReason) and "2 DR event version(s) wait for the queued plan run" in held.skip_message

    # It started: the waiting versions are requested, once each, and never the first again.
    instance.delete_run(run_id)
    instance.add_run(DagsterRun(job_name="dr_plan_job", run_id=run_id, status=DagsterRunStatus.STARTED))
    later = evaluate(database, first.cursor, instance)
    keys = list(later.dynamic_partitions_requests[0].partition_keys)
    assert keys == ["HOLD-B@v1", "HOLD-A@v2"] and covered(later, keys) == keys
    assert {r.run_key for r in later.run_requests}.isdisjoint({"HOLD-A@v1"})
    assert isinstance(evaluate(database, later.cursor, instance), SkipReason)


def test_an_evaluation_reads_at_most_a_batch_and_the_next_takes_the_rest(inbox):
    database, engine = inbox
    build_plan_inputs(engine)
    start = FLEET_END - timedelta(hours=3)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ops.dr_events (event_id, version, source, facility_ids, event_start, event_end, target_reduction_pct, payload) "
            "select 'MANY-' || n, 'v1', 'utility', array['F-A'], :s, :e, 10, '{}'::jsonb from generate_series(1, :n) as n"
        ), {"s": start, "e": start + timedelta(hours=1), "n": BATCH + 5})
    first = evaluate(database, "0")
    second = evaluate(database, first.cursor)
    seen = list(first.dynamic_partitions_requests[0].partition_keys) + list(second.dynamic_partitions_requests[0].partition_keys)
    assert len(seen) == len(set(seen)) == BATCH + 5
    assert len(first.run_requests) == PLAN_RUNS and len(second.run_requests) == PLAN_RUNS


def test_an_event_that_commits_after_a_later_one_is_not_skipped(inbox):
    """Receivers store side by side: the one that drew the smaller inbox id may commit
    last. The sensor waits for it instead of moving its cursor past it (a burst of 1,000
    lost one this way)."""
    database, engine = inbox
    build_plan_inputs(engine)
    start = FLEET_END - timedelta(hours=3)
    insert = statements("dr_inbox.sql")["insert_event"]

    def event(event_id: str) -> dict:
        return {
            "event_id": event_id, "version": "v1", "source": "utility", "facility_ids": ["F-A"], "event_start": start,
            "event_end": start + timedelta(hours=1), "target_reduction_pct": 10, "target_reduction_kw": None,
            "intervals": None, "payload": "{}", "delivery_id": None, "status": "received",
        }

    def sensor_waits() -> bool:
        with engine.connect() as conn:
            return conn.scalar(sa.text(
                "select count(*) from pg_locks where locktype = 'advisory' and not granted"
                " and database = (select oid from pg_database where datname = current_database())"
            )) > 0

    slow = engine.raw_connection()  # a receiver still inside its transaction
    try:
        with slow.cursor() as cur:
            cur.execute(insert, event("RACE-1"))
            first_id = cur.fetchone()[0]
        with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
            cur.execute(insert, event("RACE-2"))  # a later id, committed first
            assert cur.fetchone()[0] > first_id
        with ThreadPoolExecutor(max_workers=1) as pool:
            evaluation = pool.submit(evaluate, database, "0")
            wait_for(sensor_waits, 60, "the sensor to wait for the store in flight")
            slow.commit()
            result = evaluation.result(timeout=120)
    finally:
        slow.close()
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ["RACE-1@v1", "RACE-2@v1"]
    assert covered(result, ["RACE-1@v1", "RACE-2@v1"]) == ["RACE-1@v1", "RACE-2@v1"]


def test_a_version_planned_already_is_not_planned_again_from_an_earlier_cursor(inbox):
    """`wattline demo` plans its own event in-process; the daemon, served afterwards for
    the first time, evaluates from cursor 0: it plans what still waits (an event a failed
    demo left behind) and never the planned event again, alone or in a range."""
    database, engine = inbox
    build_plan_inputs(engine)
    start = FLEET_END - timedelta(hours=3)
    add_dr_event(engine, "DEMO-LEFT", "v1", ["F-A"], start, start + timedelta(hours=1))
    add_dr_event(engine, "DEMO-DONE", "v1", ["F-A"], start, start + timedelta(hours=1), status="planned")
    add_dr_event(engine, "LATER", "v1", ["F-A"], start, start + timedelta(hours=1))

    result = evaluate(database, "0")
    assert [r.partition_key for r in result.run_requests] == ["DEMO-LEFT@v1", "LATER@v1"]
    assert all(r.partition_key_range is None for r in result.run_requests)


# Thursday 2 April 2026, 19:00–21:00 UTC: 21:00–23:00 in Berlin, 15:00–17:00 in New York.
EVENT_START = FLEET_END - timedelta(hours=5)
EVENT_END = EVENT_START + timedelta(hours=2)


def baseline_rows(engine, key):
    event_id, version = dr_event_version(key)
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "select * from marts.fct_dr_baseline where event_id = :e and version = :v order by facility_id, interval_start"
        ), {"e": event_id, "v": version}).mappings().all()


def run_baseline(database, key):
    return dr_run(database, [dr_baseline], key)


def test_an_event_id_holding_an_at_sign_is_planned_as_itself(simulated_fleet):
    """`@` is allowed in event ids and versions; the partition key `<id>@<version>` must
    still name the event it came from, not the one its first `@` would cut out."""
    database, engine = simulated_fleet
    # Cut at its first `@`, event EV@1 version 3 reads as this one: event EV, version 1@3.
    add_dr_event(engine, "AT-EV", "1@3", ["FAC-0002"], EVENT_START, EVENT_END)
    add_dr_event(engine, "AT-EV@1", "3", ["FAC-0001"], EVENT_START, EVENT_END)
    key = dr_partition_key("AT-EV@1", "3")
    assert dr_event_version(key) == ("AT-EV@1", "3")
    assert dr_event_version(dr_partition_key("AT-EV", "1@3")) == ("AT-EV", "1@3")
    assert key != dr_partition_key("AT-EV", "1@3")

    assert run_baseline(database, key).success
    with engine.connect() as conn:
        planned = conn.execute(sa.text(
            "select distinct event_id, version, facility_id from marts.fct_dr_baseline where event_id like 'AT-EV%'"
        )).all()
    assert planned == [("AT-EV@1", "3", "FAC-0001")]


def sql_cbl(engine, facility_id, timezone, days, slot):
    """The same-wall-clock average of grid import over the given local days, computed in SQL."""
    with engine.connect() as conn:
        return conn.scalar(sa.text(
            "select avg(grid_avg_kw) from marts.fct_load_15min where facility_id = :f "
            "and (interval_start at time zone :tz)::date = any(cast(:days as date[])) "
            "and (interval_start at time zone :tz)::time = (cast(:slot as timestamptz) at time zone :tz)::time"
        ), {"f": facility_id, "tz": timezone, "days": days, "slot": slot})


def test_the_baseline_of_an_event_from_the_cbl_then_the_forecast(simulated_fleet):
    database, engine = simulated_fleet
    add_dr_event(engine, "BASE-1", "v1", ["FAC-0001", "FAC-0002"], EVENT_START, EVENT_END)
    result = run_baseline(database, "BASE-1@v1")
    assert result.success
    rows = baseline_rows(engine, "BASE-1@v1")
    assert [(r["facility_id"], r["interval_start"]) for r in rows] == [
        (f, EVENT_START + timedelta(minutes=15 * i)) for f in ("FAC-0001", "FAC-0002") for i in range(8)
    ]
    with engine.connect() as conn:
        timezones = dict(conn.execute(sa.text("select facility_id, timezone from marts.dim_facility")).all())
    for row in rows:
        assert row["cbl_days"] == 10 and 0.8 <= row["adjustment_ratio"] <= 1.2
        assert row["adjusted_cbl_kw"] == pytest.approx(row["cbl_kw"] * row["adjustment_ratio"], rel=1e-3)
        # No forecast covers the event yet (the forecast tests forecast from the end of
        # the fleet's data, after it): the CBL.
        assert row["forecast_kw"] is None and row["baseline_source"] == "cbl"
        assert row["baseline_kw"] == pytest.approx(row["adjusted_cbl_kw"])
    # The ten weekdays before Thursday 2 April, none an event day: 19 March – 1 April.
    days = ["2026-03-19", "2026-03-20", "2026-03-23", "2026-03-24", "2026-03-25",
            "2026-03-26", "2026-03-27", "2026-03-30", "2026-03-31", "2026-04-01"]
    for row in rows[::3]:
        tz = timezones[row["facility_id"]]
        expected = sql_cbl(engine, row["facility_id"], tz, days, row["interval_start"].isoformat())
        assert row["cbl_kw"] == pytest.approx(expected, rel=1e-6), row
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["facilities_without_baseline"].value == 0
    assert undocumented_columns(engine, "marts.fct_dr_baseline") == []
    assert result.get_asset_check_evaluations()[0].passed

    # With a forecast covering the event, the plan's baseline is the forecast's hour.
    as_of = EVENT_START.replace(minute=0) - timedelta(hours=1)
    assert materialize(
        [load_forecast], resources={"postgres": PostgresResource(url=database.url)},
        run_config={"ops": {"load_forecast": {"config": {"as_of": as_of.isoformat()}}}},
    ).success
    assert run_baseline(database, "BASE-1@v1").success
    again = baseline_rows(engine, "BASE-1@v1")
    assert len(again) == len(rows)  # replaced, not added
    with engine.connect() as conn:
        forecast = {
            (f, t): kw for f, t, kw in conn.execute(sa.text("select facility_id, interval_start, yhat_kw from marts.fct_load_forecast"))
        }
    for row in again:
        hour = row["interval_start"].replace(minute=0)
        assert row["baseline_source"] == "forecast" and row["forecast_kw"] == forecast[(row["facility_id"], hour)]
        # The forecast is of consumption; the baseline is grid import: less the on-site supply.
        assert row["baseline_kw"] == pytest.approx(max(0.0, row["forecast_kw"] - row["onsite_kw"]), abs=1e-4)
        assert row["cbl_kw"] is not None
    # The data centre's wind turbine supplies some of it; the office has no on-site supply.
    assert any(r["onsite_kw"] > 0 for r in again if r["facility_id"] == "FAC-0002")
    assert {r["onsite_kw"] for r in again if r["facility_id"] == "FAC-0001"} == {0.0}


def test_an_earlier_event_day_is_not_a_cbl_day(simulated_fleet):
    database, engine = simulated_fleet
    # FAC-0001 had an event on Wednesday 1 April: its CBL reaches back to 18 March instead.
    add_dr_event(engine, "EARLIER", "v1", ["FAC-0001"], EVENT_START - timedelta(days=1), EVENT_END - timedelta(days=1))
    add_dr_event(engine, "BASE-2", "v1", ["FAC-0001"], EVENT_START, EVENT_END)
    assert run_baseline(database, "BASE-2@v1").success
    rows = baseline_rows(engine, "BASE-2@v1")
    days = ["2026-03-18", "2026-03-19", "2026-03-20", "2026-03-23", "2026-03-24",
            "2026-03-25", "2026-03-26", "2026-03-27", "2026-03-30", "2026-03-31"]
    expected = sql_cbl(engine, "FAC-0001", "Europe/Berlin", days, rows[0]["interval_start"].isoformat())
    assert rows[0]["cbl_kw"] == pytest.approx(expected, rel=1e-6)
    assert rows[0]["cbl_days"] == 10


def test_a_redelivered_webhook_plans_once_and_a_revision_plans_again(simulated_fleet):
    """The whole intake on loopback: signed webhook → receiver → inbox → sensor → one
    plan run per event version."""
    import base64
    import secrets

    from assets.demand_response import dr_reduction_plan
    from sensors.webhook_app import ReceiverConfig, create_app
    from simulator.server import BackgroundServer
    from simulator.utility import DrCall, call_event

    database, engine = simulated_fleet
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with engine.connect() as conn:
        cursor = str(conn.scalar(sa.text("select coalesce(max(inbox_id), 0) from ops.dr_events")))
    # The fleet's data is history: the receiver judges the event as the hour before it.
    receiver = BackgroundServer(create_app(ReceiverConfig(
        database.sqlalchemy_url, webhook_secret=secret, clock=lambda: EVENT_START - timedelta(hours=1),
    ))).start()
    try:
        first = DrCall("REDELIVER-1", ["FAC-0001", "FAC-0002"], EVENT_START, EVENT_END, reduction_pct=10)
        assert [call_event(receiver.url, secret, first).status_code for _ in range(3)] == [202, 202, 202]
        requests = evaluate(database, cursor).run_requests
        assert len(requests) == 1
        for request in requests:
            assert dr_run(database, [dr_baseline, dr_reduction_plan], request.partition_key).success
        revised = DrCall("REDELIVER-1", ["FAC-0001", "FAC-0002"], EVENT_START, EVENT_END + timedelta(minutes=30), reduction_pct=10)
        assert call_event(receiver.url, secret, revised).status_code == 202
        with engine.connect() as conn:
            cursor = str(conn.scalar(sa.text("select max(inbox_id) - 1 from ops.dr_events")))
        later = evaluate(database, cursor).run_requests
        assert len(later) == 1 and later[0].run_key != requests[0].run_key
        assert dr_run(database, [dr_baseline, dr_reduction_plan], later[0].partition_key).success
    finally:
        receiver.stop()
    with engine.connect() as conn:
        versions = conn.execute(sa.text(
            "select e.version, e.status, e.event_end, count(distinct p.interval_start) filter (where p.phase = 'event') "
            "from ops.dr_events e left join marts.fct_dr_reduction_plan p using (event_id, version) "
            "where e.event_id = 'REDELIVER-1' group by e.inbox_id, e.version, e.status, e.event_end order by e.inbox_id"
        )).all()
    # Two versions, each planned once over its own window (8 and 10 quarter hours).
    assert [(status, end, intervals) for _, status, end, intervals in versions] == [
        ("planned", EVENT_END, 8), ("planned", EVENT_END + timedelta(minutes=30), 10),
    ]


def test_the_version_of_an_event_that_counts_is_the_last_the_utility_sent(inbox):
    """ops.dr_events_current owns the rule every reader of the inbox applies (the
    sensors' statements, the planner, fct_dr_event_performance)."""
    database, engine = inbox
    start = FLEET_END - timedelta(hours=3)
    add_dr_event(engine, "CUR-1", "v1", ["F-A"], start, start + timedelta(hours=1))
    add_dr_event(engine, "CUR-2", "only", ["F-A"], start, start + timedelta(hours=1))
    # A revision arrives later, whatever it is called: it counts, not the name's order.
    add_dr_event(engine, "CUR-1", "a-revision", ["F-A", "F-B"], start, start + timedelta(hours=2))
    with engine.connect() as conn:
        current = conn.execute(sa.text(
            "select event_id, version, facility_ids from ops.dr_events_current where event_id like 'CUR-%' order by event_id"
        )).all()
    assert current == [("CUR-1", "a-revision", ["F-A", "F-B"]), ("CUR-2", "only", ["F-A"])]
    # The planner's statement (psycopg2 parameters) reads the same.
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute(statements("dr_tables.sql")["latest_version"], {"event_id": "CUR-1"})
            assert cur.fetchone() == ("a-revision", "received")
    finally:
        raw.close()
