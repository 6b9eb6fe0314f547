"""Grid energy prices per price zone: `raw.grid_prices`, one daily partition per UTC day."""

from datetime import UTC, datetime, timedelta

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from orchestration.conditions import fill_missing
from orchestration.partitions import daily_partitions
from resources.feed_tables import replace_window, window_metadata
from resources.postgres import PostgresResource
from resources.price_api import PriceApiResource, hourly_averages

HOUR = timedelta(hours=1)


def price_zones(postgres: PostgresResource) -> dict[str, str]:
    """Price zone → the time zone its feed speaks (that of the zone's facilities)."""
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(
            "select price_zone, min(timezone) from raw.facilities"
            " where active and price_zone is not null group by price_zone order by price_zone"
        )
        return dict(cur.fetchall())


@asset(
    key=AssetKey(["raw", "grid_prices"]),
    deps=[AssetKey(["raw", "facilities"])],
    partitions_def=daily_partitions,
    group_name="grid",
    kinds={"python", "postgres"},
    owners=["team:energy-data"],
    automation_condition=fill_missing(),
)
def grid_prices(context: AssetExecutionContext, price_api: PriceApiResource, postgres: PostgresResource) -> MaterializeResult:
    """Grid energy prices for every price zone a facility is in, in currency per MWh
    (ComEd's ¢/kWh × 10 = USD/MWh), in `raw.grid_prices`. `currency` is the one the feed
    states; the ComEd format states none, so it stays empty (unless
    WATTLINE_PRICE_FEED_CURRENCY says) and dbt staging takes the zone's:

    - `resolution = '5min'`: real-time 5-minute prices (ComEd feed format);
    - `resolution = '1h'`, same source: their hourly averages (`intervals` = how many
      5-minute prices the hour had so far; 12 when complete);
    - `source = 'day_ahead'`: day-ahead hourly prices, where the source publishes them.

    Loading a day replaces that day's prices for those zones in one transaction, after
    every zone was fetched: a source failure writes nothing of the day.
    """
    window = context.partition_time_window
    end = min(window.end, datetime.now(UTC))
    zones = price_zones(postgres)
    five_minute: list[dict] = []
    day_ahead: list[dict] = []
    rejected: list[dict] = []
    for zone, local_tz in zones.items():
        parsed = price_api.five_minute(zone, window.start, end, local_tz)
        five_minute += parsed.rows
        rejected += parsed.rejected
        ahead = price_api.day_ahead(zone, window.start.date())
        day_ahead += [{**row, "resolution": "1h", "intervals": None} for row in ahead.rows if window.start <= row["interval_start"] < window.end]
        rejected += ahead.rejected

    hourly = [
        {"zone": h["zone"], "interval_start": h["hour_start"], "interval_end": h["hour_start"] + HOUR,
         "resolution": "1h", "price_per_mwh": h["price_per_mwh"], "currency": h["currency"], "source": "comed_5min", "intervals": h["intervals"]}
        for h in hourly_averages(five_minute)
    ]
    rows = [{**row, "resolution": "5min", "intervals": None} for row in five_minute] + hourly + day_ahead
    params = {"zones": list(zones), "start": window.start, "end": window.end}
    where = "zone = any(%(zones)s) and interval_start >= %(start)s and interval_start < %(end)s"
    replaced = replace_window(postgres, "raw.grid_prices", rows, where, params, context.partition_key, rejected)

    day = window_metadata(postgres, "raw.grid_prices", "interval_start", window.start, window.end)
    if rejected:
        context.log.warning(f"{len(rejected)} price points unreadable (kept in raw.feed_rejected): {rejected[0]['reason']}")
    prices = [row["price_per_mwh"] for row in five_minute]
    return MaterializeResult(
        metadata={
            **day,
            "five_minute_prices": len(five_minute),
            "hourly_averages": len(hourly),
            "day_ahead_prices": len(day_ahead),
            "rows_replaced": replaced,
            "zones": ", ".join(zones) or "none",
            "unit": "currency per MWh",
            "mean_price_per_mwh": round(sum(prices) / len(prices), 2) if prices else "no prices",
            "points_rejected": len(rejected),
        }
    )
