"""Grid carbon intensity per grid zone: `raw.grid_carbon_intensity`, one daily partition per UTC day."""

from datetime import UTC, datetime

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from orchestration.conditions import fill_missing
from orchestration.partitions import daily_partitions
from resources.carbon_api import CarbonApiResource
from resources.feed_tables import replace_window, window_metadata
from resources.postgres import PostgresResource


def grid_zones(postgres: PostgresResource) -> list[str]:
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute("select distinct grid_zone from raw.facilities where active and grid_zone is not null order by 1")
        return [zone for (zone,) in cur.fetchall()]


@asset(
    key=AssetKey(["raw", "grid_carbon_intensity"]),
    deps=[AssetKey(["raw", "facilities"])],
    partitions_def=daily_partitions,
    group_name="grid",
    kinds={"python", "postgres"},
    owners=["team:energy-data"],
    automation_condition=fill_missing(),
)
def grid_carbon_intensity(
    context: AssetExecutionContext, carbon_api: CarbonApiResource, postgres: PostgresResource
) -> MaterializeResult:
    """Hourly carbon intensity of the electricity grid (gCO2eq/kWh) for every grid zone a
    facility is in, in `raw.grid_carbon_intensity`, one row per zone, hour start (UTC) and
    emission factor type: `lifecycle` (includes upstream emissions, Electricity Maps'
    default) and `direct` (combustion only). `is_estimated` marks hours the source has
    only estimated so far; a later load of the day replaces them. A source failure
    writes nothing of the day.
    """
    window = context.partition_time_window
    end = min(window.end, datetime.now(UTC))
    zones = grid_zones(postgres)
    rows: list[dict] = []
    rejected: list[dict] = []
    for zone in zones:
        for factor_type in carbon_api.factor_types:
            parsed = carbon_api.past_range(zone, window.start, end, factor_type)
            rows += parsed.rows
            rejected += parsed.rejected
    params = {"zones": zones, "factor_types": list(carbon_api.factor_types), "start": window.start, "end": window.end}
    where = "zone = any(%(zones)s) and factor_type = any(%(factor_types)s) and hour_start >= %(start)s and hour_start < %(end)s"
    replaced = replace_window(postgres, "raw.grid_carbon_intensity", rows, where, params, context.partition_key, rejected)

    day = window_metadata(postgres, "raw.grid_carbon_intensity", "hour_start", window.start, window.end)
    if rejected:
        context.log.warning(f"{len(rejected)} carbon points unreadable (kept in raw.feed_rejected): {rejected[0]['reason']}")
    lifecycle = [row["carbon_intensity_g_per_kwh"] for row in rows if row["factor_type"] == "lifecycle"]
    return MaterializeResult(
        metadata={
            **day,
            "rows_written": len(rows),
            "rows_replaced": replaced,
            "estimated_hours": sum(1 for row in rows if row["is_estimated"]),
            "zones": ", ".join(zones) or "none",
            "factor_types": ", ".join(carbon_api.factor_types),
            "mean_lifecycle_g_per_kwh": round(sum(lifecycle) / len(lifecycle), 1) if lifecycle else "none",
            "points_rejected": len(rejected),
        }
    )
