"""The alert sensor: keeps ops.alerts in step with what is wrong now
(`intermediate.int_alert_conditions`, a dbt view): a new condition raises an alert, a
worse one escalates it, a cleared one resolves it."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from orchestration.settings import get_settings
from resources.alert_store import SQL, Condition, raise_alert, resolve_cleared
from resources.postgres import PostgresResource
from resources.sql_files import statements

# The kinds the view reports; an open alert of one of them that the view no longer
# lists has cleared.
KINDS = ("carbon_budget", "utilization", "anomaly", "stale_data")


@sensor(
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Every minute, raises an alert in ops.alerts for each condition in intermediate.int_alert_conditions "
        "(carbon budget at warning/critical/exceeded, utilisation in the scale-up band, an ongoing "
        "high-severity anomaly, stale data), escalates it when its level rises, and resolves the "
        "alerts whose condition has cleared. One condition is one alert."
    ),
)
def alert_conditions_sensor(context: SensorEvaluationContext, postgres: PostgresResource):
    channels = get_settings().notification_channels
    sql = statements(SQL)
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["conditions_exist"])
        if not cur.fetchone()[0]:
            return SkipReason("no intermediate.int_alert_conditions yet: the marts have not been built")
        cur.execute(sql["conditions"])
        conditions = [Condition(*row) for row in cur.fetchall()]
        outcomes = {"raised": 0, "escalated": 0, "unchanged": 0}
        for condition in conditions:
            alert_id, outcome = raise_alert(cur, condition, channels)
            outcomes[outcome] += 1
            if outcome != "unchanged":
                context.log.info(f"alert {alert_id} {outcome}: {condition.message}")
        resolved = []
        for kind in KINDS:
            keys = [c.alert_key for c in conditions if c.kind == kind]
            resolved += resolve_cleared(cur, kind, keys, "the condition cleared")
    for alert_id, key in resolved:
        context.log.info(f"alert {alert_id} resolved: {key} cleared")
    return SkipReason(
        f"{len(conditions)} conditions: {outcomes['raised']} raised, {outcomes['escalated']} escalated, "
        f"{len(resolved)} resolved"
    )
