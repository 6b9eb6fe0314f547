"""The alert store and the run-failure alerts against the session warehouse: one alert
per condition, escalation makes an acknowledged alert active again, a cleared condition
resolves it; a failed run raises an alert that its job's next success resolves; the
`wattline alerts` commands list and acknowledge."""

import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, Failure, build_run_status_sensor_context, job, op

from resources.alert_store import Condition, acknowledge, raise_alert, resolve_cleared
from resources.postgres import PostgresResource
from sensors.run_alerts import run_failure_alerts, run_success_resolves_alerts

LEVELS = {1: "warning", 2: "critical", 3: "exceeded"}


def budget(key: str, level: int) -> Condition:
    return Condition(key, "test_budget", "FAC-T budget", level, LEVELS[level], f"budget at level {LEVELS[level]}")


def alerts(engine, pattern: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "select * from ops.alerts where alert_key like :p order by alert_id"
        ), {"p": pattern}).mappings()]


def test_one_alert_per_condition_escalating_and_resolving(engine):
    key = f"test_budget:{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
        first = raise_alert(cur, budget(key, 1))
        again = raise_alert(cur, budget(key, 1))
        assert first[1] == "raised" and again == (first[0], "unchanged")
        assert acknowledge(cur, first[0], "ops-on-call") == f"alert {first[0]} acknowledged by ops-on-call"
        with pytest.raises(ValueError, match="is acknowledged: only an active alert"):
            acknowledge(cur, first[0], "someone else")
        # 95 %: the same alert escalates and wants attention again; then 100 %.
        assert raise_alert(cur, budget(key, 2)) == (first[0], "escalated")
        assert raise_alert(cur, budget(key, 3)) == (first[0], "escalated")
    [row] = alerts(engine, key)
    assert row["status"] == "active" and row["level_name"] == "exceeded" and row["acknowledged_by"] == "ops-on-call"
    assert row["escalated_at"] is not None

    # The condition clears (the budget period rolled over): resolved; a new one is a new alert.
    with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
        assert resolve_cleared(cur, "test_budget", [], "budget period rolled over") == [(first[0], key)]
        assert raise_alert(cur, budget(key, 1))[1] == "raised"
    rows = alerts(engine, key)
    assert [r["status"] for r in rows] == ["resolved", "active"]
    assert rows[0]["resolution"] == "budget period rolled over"
    with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur, pytest.raises(LookupError, match="no alert"):
        acknowledge(cur, 10**12, "nobody")


class Flaky:
    fail = True


@op
def sometimes_fails():
    if Flaky.fail:
        raise Failure("the head-end answered 503 after retries")


@job
def flaky_job():
    sometimes_fails()


def run_and_sense(warehouse, sensor, fail: bool, key: str):
    instance = DagsterInstance.ephemeral()
    Flaky.fail = fail
    result = flaky_job.execute_in_process(instance=instance, raise_on_error=False, tags={"dagster/partition": key})
    run = instance.get_run_by_id(result.run_id)
    event = result.get_run_failure_event() if fail else result.get_run_success_event()
    with build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=event, dagster_instance=instance, dagster_run=run,
        resources={"postgres": PostgresResource(url=warehouse.url)},
    ) as context:
        sensor(context.for_run_failure() if fail else context)


def test_a_failed_run_raises_an_alert_its_next_success_resolves(warehouse, engine):
    partition = f"2026-05-01-{uuid.uuid4().hex[:6]}"
    run_and_sense(warehouse, run_failure_alerts, True, partition)
    run_and_sense(warehouse, run_failure_alerts, True, partition)  # the retry fails too: still one alert
    [alert] = alerts(engine, f"run_failure:flaky_job:{partition}")
    assert alert["status"] == "active" and "the head-end answered 503 after retries" in alert["message"]
    run_and_sense(warehouse, run_success_resolves_alerts, False, partition)
    [alert] = alerts(engine, f"run_failure:flaky_job:{partition}")
    assert alert["status"] == "resolved" and "succeeded" in alert["resolution"]


def test_the_alerts_commands_list_and_acknowledge(warehouse, engine):
    key = f"test_budget:{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
        alert_id, _ = raise_alert(cur, budget(key, 2))
    env = {**os.environ, "WATTLINE_DATABASE_URL": warehouse.url}

    def wattline(*args):
        return subprocess.run([sys.executable, "-m", "orchestration.cli", "alerts", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    listed = wattline("list")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[0] == str(alert_id) and "critical" in line for line in listed.stdout.splitlines()[1:])
    acked = wattline("ack", str(alert_id), "--by", "night-shift")
    assert acked.returncode == 0 and acked.stdout.strip() == f"alert {alert_id} acknowledged by night-shift"
    twice = wattline("ack", str(alert_id))
    assert twice.returncode == 1 and "only an active alert can be acknowledged" in twice.stderr


@pytest.fixture
def conditions_db(pg_server):
    """A warehouse of its own whose intermediate.int_alert_conditions the test writes: the
    view's logic is its dbt unit test; here, what the sensor does with what it lists."""
    from resources.postgres import ensure_warehouse_schema
    from tests.conftest import create_database, drop_database

    database = create_database(pg_server, "wattline_alerts")
    ensure_warehouse_schema(database)
    engine = sa.create_engine(database.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "create schema intermediate; create table intermediate.int_alert_conditions "
            "(alert_key text, kind text, subject text, level int, level_name text, message text)"
        ))
    yield database, engine
    engine.dispose()
    drop_database(pg_server, database)


def test_a_budget_crossing_80_95_100_escalates_one_alert_and_the_new_period_resolves_it(conditions_db):
    from dagster import build_sensor_context

    from sensors.alert_conditions import alert_conditions_sensor

    database, engine = conditions_db

    def tick(*rows):
        with engine.begin() as conn:
            conn.execute(sa.text("delete from intermediate.int_alert_conditions"))
            for row in rows:
                conn.execute(sa.text("insert into intermediate.int_alert_conditions values (:k, :kind, :s, :l, :n, :m)"), row)
        with build_sensor_context(resources={"postgres": PostgresResource(url=database.url)}) as context:
            return alert_conditions_sensor(context).skip_message

    def budget_at(pct, level, name):
        return {"k": "carbon_budget:B:F1:2026-05-01", "kind": "carbon_budget", "s": "F1 budget B", "l": level, "n": name,
                "m": f"F1 has used {pct} % of carbon budget B"}

    stale = {"k": "stale_data:F2", "kind": "stale_data", "s": "F2", "l": 2, "n": "stale", "m": "F2 has no load"}
    assert tick(budget_at(81, 1, "warning"), stale) == "2 conditions: 2 raised, 0 escalated, 0 resolved"
    assert tick(budget_at(83, 1, "warning"), stale) == "2 conditions: 0 raised, 0 escalated, 0 resolved"
    assert tick(budget_at(96, 2, "critical"), stale) == "2 conditions: 0 raised, 1 escalated, 0 resolved"
    assert tick(budget_at(101, 3, "exceeded")) == "1 conditions: 0 raised, 1 escalated, 1 resolved"  # F2's data came in
    rows = alerts(engine, "%")
    budget = [r for r in rows if r["kind"] == "carbon_budget"]
    assert len(budget) == 1 and budget[0]["level_name"] == "exceeded" and budget[0]["message"] == "F1 has used 101 % of carbon budget B"
    assert [r["status"] for r in rows if r["kind"] == "stale_data"] == ["resolved"]
    # June begins: May's period is no longer current, and its alert resolves.
    assert tick() == "0 conditions: 0 raised, 0 escalated, 1 resolved"
    [budget] = [r for r in alerts(engine, "%") if r["kind"] == "carbon_budget"]
    assert budget["status"] == "resolved" and budget["resolution"] == "the condition cleared"
