"""Weather at every facility: `raw.weather_hourly`, one daily partition per UTC day."""

from datetime import UTC, datetime, timedelta

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from orchestration.conditions import fill_missing
from orchestration.partitions import daily_partitions
from resources.feed_tables import replace_window, window_metadata
from resources.postgres import PostgresResource
from resources.weather_api import WeatherApiResource

FORECAST_HORIZON = timedelta(hours=48)
# Facilities within the same 0.1° cell (~11 km, about the resolution of Open-Meteo's
# regional models) share one request.
CELL_DECIMALS = 1


def facility_locations(postgres: PostgresResource) -> tuple[dict[tuple[float, float], list[str]], list[str]]:
    """Active facilities grouped by weather cell, and those without coordinates."""
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute("select facility_id, latitude, longitude from raw.facilities where active order by facility_id")
        cells: dict[tuple[float, float], list[str]] = {}
        unlocated = []
        for facility_id, latitude, longitude in cur.fetchall():
            if latitude is None or longitude is None:
                unlocated.append(facility_id)
                continue
            cells.setdefault((round(latitude, CELL_DECIMALS), round(longitude, CELL_DECIMALS)), []).append(facility_id)
    return cells, unlocated


@asset(
    key=AssetKey(["raw", "weather_hourly"]),
    deps=[AssetKey(["raw", "facilities"])],
    partitions_def=daily_partitions,
    group_name="weather",
    kinds={"python", "postgres"},
    owners=["team:energy-data"],
    automation_condition=fill_missing(),
)
def weather_hourly(context: AssetExecutionContext, weather_api: WeatherApiResource, postgres: PostgresResource) -> MaterializeResult:
    """Hourly weather at each facility (temperature °C, relative humidity %, cloud cover %,
    shortwave radiation W/m², wind speed km/h) in `raw.weather_hourly`, one row per
    facility and UTC hour start.

    Days older than `archive_min_age_days` come from the archive API; newer days from
    the forecast API, and today's partition also carries the next 48 hours of forecast
    (`is_forecast`, `issued_at`). Loading a day replaces it, so later loads turn
    forecasts into observations. Every location is fetched before anything is written:
    a source failure writes nothing of the day.
    """
    window = context.partition_time_window
    day_start, day_end = window.start, window.end
    now = datetime.now(UTC)
    issued = now.replace(minute=0, second=0, microsecond=0)
    is_open_day = day_end > now
    horizon_end = issued + FORECAST_HORIZON + timedelta(hours=1) if is_open_day else day_end
    archive = day_end.date() <= (now - timedelta(days=weather_api.archive_min_age_days)).date()

    cells, unlocated = facility_locations(postgres)
    if unlocated:
        context.log.warning(f"{len(unlocated)} active facilities have no coordinates and get no weather: {unlocated[:10]}")
    rows: list[dict] = []
    rejected: list[dict] = []
    last_day = (max(horizon_end, day_end) - timedelta(seconds=1)).date()
    for (latitude, longitude), facility_ids in sorted(cells.items()):
        parsed = weather_api.hourly(latitude, longitude, day_start.date(), last_day, archive=archive)
        rejected += parsed.rejected
        for point in parsed.rows:
            time = point.pop("time")
            if not day_start <= time < max(horizon_end, day_end):
                continue
            forecast = time > issued
            for facility_id in facility_ids:
                rows.append({
                    "facility_id": facility_id,
                    "time": time,
                    **point,
                    "is_forecast": forecast,
                    "source": "archive" if archive else "forecast",
                    "issued_at": now if forecast else None,
                    "latitude": latitude,
                    "longitude": longitude,
                })
    facilities = [f for ids in cells.values() for f in ids]
    # The open day also replaces the forecast ahead of it; a past day only its own hours,
    # so reloading history never drops the current forecast.
    where = "facility_id = any(%(facilities)s) and time >= %(start)s and (time < %(end)s"
    where += " or is_forecast)" if is_open_day else ")"
    params = {"facilities": facilities, "start": day_start, "end": day_end}
    replaced = replace_window(postgres, "raw.weather_hourly", rows, where, params, context.partition_key, rejected)

    day = window_metadata(postgres, "raw.weather_hourly", "time", day_start, day_end)
    forecast_rows = sum(1 for row in rows if row["is_forecast"])
    if rejected:
        context.log.warning(f"{len(rejected)} weather points unreadable (kept in raw.feed_rejected): {rejected[0]['reason']}")
    return MaterializeResult(
        metadata={
            **day,
            "rows_written": len(rows),
            "rows_replaced": replaced,
            "forecast_rows": forecast_rows,
            "observed_rows": len(rows) - forecast_rows,
            "source": "archive" if archive else "forecast",
            "facilities": len(facilities),
            "locations_fetched": len(cells),
            "facilities_without_coordinates": len(unlocated),
            "points_rejected": len(rejected),
            "forecast_until": MetadataValue.timestamp(horizon_end - timedelta(hours=1)) if is_open_day else "no forecast (past day)",
        }
    )
