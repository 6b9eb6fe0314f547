"""The facility and meter registry from the head-end API: `raw.facilities`, `raw.meters`."""

import json

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from orchestration.conditions import fill_missing
from resources.postgres import PostgresResource
from resources.sql_files import statements
from resources.telemetry_api import TelemetryApiResource


def _upsert(postgres: PostgresResource, entity: str, rows: list[dict], id_column: str) -> dict:
    sql = statements("registry_upsert.sql")
    ids = [row[id_column] for row in rows]
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql[entity], {"rows": json.dumps(rows)})
        upserted = cur.rowcount
        cur.execute(sql[f"{entity}_retired"], {"ids": ids})
        retired = cur.rowcount
        cur.execute(sql[f"{entity}_counts"])
        active, inactive = cur.fetchone()
    return {"dagster/row_count": active + inactive, "active": active, "inactive": inactive, "upserted": upserted, "retired_now": retired}


@asset(
    key=AssetKey(["raw", "facilities"]),
    group_name="registry",
    kinds={"python", "postgres"},
    owners=["team:energy-data"],
    automation_condition=fill_missing(),
)
def facilities(context: AssetExecutionContext, telemetry_api: TelemetryApiResource, postgres: PostgresResource) -> MaterializeResult:
    """Every facility the head-end knows: name, archetype, timezone, location, contract
    demand, price and grid zones. Upserted by facility_id; a facility the API stops
    listing is marked inactive, never deleted, so history keeps its dimension."""
    return MaterializeResult(metadata=_upsert(postgres, "facilities", telemetry_api.facilities(), "facility_id"))


@asset(
    key=AssetKey(["raw", "meters"]),
    deps=[facilities],
    group_name="registry",
    kinds={"python", "postgres"},
    owners=["team:energy-data"],
    automation_condition=fill_missing(),
)
def meters(context: AssetExecutionContext, telemetry_api: TelemetryApiResource, postgres: PostgresResource) -> MaterializeResult:
    """Every meter: its facility, energy source and end use, reading interval. Readings
    from a meter missing here are quarantined as `unknown_meter`. Upserted by meter_id;
    a meter that disappears is marked inactive, never deleted."""
    return MaterializeResult(metadata=_upsert(postgres, "meters", telemetry_api.meters(), "meter_id"))
