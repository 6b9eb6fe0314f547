"""Grid prices: ComEd's 5-minute feed and a generic JSON/CSV form, normalised to one
unit, currency per MWh (ComEd's ¢/kWh × 10 = USD/MWh)."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field

from resources.http import SourceApiResource, SourceError
from resources.parsing import Parsed, parse_utc

FIVE_MINUTES = timedelta(minutes=5)
# Multipliers to currency per MWh, by the unit a feed states.
TO_PER_MWH = {"USD/MWh": ("USD", 1.0), "EUR/MWh": ("EUR", 1.0), "GBP/MWh": ("GBP", 1.0),
              "USD/kWh": ("USD", 1000.0), "EUR/kWh": ("EUR", 1000.0), "¢/kWh": ("USD", 10.0), "cents/kWh": ("USD", 10.0)}


def parse_comed_five_minute(payload: list, zone: str = "COMED") -> Parsed:
    """ComEd `type=5minutefeed`: `[{"millisUTC": "…", "price": "…"}]`, ¢/kWh as strings,
    newest first. Each price covers the 5 minutes ending at millisUTC. Rows come out
    oldest first, in USD/MWh."""
    if not isinstance(payload, list):
        raise ValueError(f"not a ComEd 5-minute feed: expected a JSON list, got {type(payload).__name__}")
    parsed = Parsed()
    for point in payload:
        try:
            end = datetime.fromtimestamp(int(point["millisUTC"]) / 1000, UTC)
            cents = float(point["price"])
        except (KeyError, TypeError, ValueError):
            parsed.reject(point, "needs millisUTC (epoch milliseconds) and price (¢/kWh)")
            continue
        parsed.rows.append({
            "zone": zone, "interval_start": end - FIVE_MINUTES, "interval_end": end,
            "price_per_mwh": round(cents * 10.0, 4), "currency": "USD", "source": "comed_5min",
        })
    parsed.rows.sort(key=lambda row: row["interval_start"])
    return parsed


def parse_generic_prices(body: dict | str, zone: str | None = None) -> Parsed:
    """Generic prices: JSON `{"zone", "unit", "prices": [{"start", "end", "price"}]}` or CSV
    with columns start, end, price and optionally unit, currency, zone."""
    if isinstance(body, str):
        points = list(csv.DictReader(io.StringIO(body)))
        default_unit, default_zone = None, zone
    else:
        points = body.get("prices", [])
        default_unit, default_zone = body.get("unit"), body.get("zone", zone)
    parsed = Parsed()
    for point in points:
        unit = point.get("unit") or default_unit
        if unit not in TO_PER_MWH:
            parsed.reject(point, f"unknown price unit {unit!r}; known: {', '.join(TO_PER_MWH)}")
            continue
        currency, factor = TO_PER_MWH[unit]
        try:
            start, end = parse_utc(point["start"]), parse_utc(point["end"])
            price = float(point["price"])
        except (KeyError, TypeError, ValueError):
            parsed.reject(point, "needs start, end (ISO 8601) and a numeric price")
            continue
        if end <= start:
            parsed.reject(point, "end is not after start")
            continue
        parsed.rows.append({
            "zone": point.get("zone") or default_zone, "interval_start": start, "interval_end": end,
            "price_per_mwh": round(price * factor, 4), "currency": point.get("currency") or currency,
            "source": "day_ahead",
        })
    parsed.rows.sort(key=lambda row: row["interval_start"])
    return parsed


def hourly_averages(rows: list[dict]) -> list[dict]:
    """Average price per zone and UTC hour (interval starts floored to the hour)."""
    buckets: dict[tuple, list[float]] = {}
    for row in rows:
        hour = row["interval_start"].replace(minute=0, second=0, microsecond=0)
        buckets.setdefault((row["zone"], hour, row["currency"]), []).append(row["price_per_mwh"])
    return [
        {"zone": zone, "hour_start": hour, "currency": currency,
         "price_per_mwh": round(sum(values) / len(values), 4), "intervals": len(values)}
        for (zone, hour, currency), values in sorted(buckets.items(), key=lambda item: (item[0][0], item[0][1]))
    ]


class PriceApiResource(SourceApiResource):
    """Grid prices: a ComEd-style 5-minute feed and, optionally, generic day-ahead prices."""

    url_setting: ClassVar[str] = "price_api_url"
    feed: ClassVar[str] = "price API"

    five_minute_path: str = Field(default="/api", description="Path of the ComEd-format feed (`type=5minutefeed`).")
    day_ahead_path: str | None = Field(
        default="/v1/prices/day-ahead",
        description="Path of the generic day-ahead JSON (`zone`, `date`); empty = the source has none.",
    )

    def five_minute(self, zone: str, start: datetime, end: datetime, local_tz: str) -> Parsed:
        """5-minute prices of intervals starting in [start, end), USD/MWh.

        ComEd takes its window as local wall-clock times, both ends inclusive and
        stamped at interval ends: asking an hour wider on each side and filtering in
        UTC stays exact across DST changes."""
        tz = ZoneInfo(local_tz)
        params = {
            "type": "5minutefeed",
            "zone": zone,
            "datestart": (start - timedelta(hours=1)).astimezone(tz).strftime("%Y%m%d%H%M"),
            "dateend": (end + timedelta(hours=1)).astimezone(tz).strftime("%Y%m%d%H%M"),
        }
        payload = self.get_json(self.five_minute_path, params, "a ComEd 5-minute price list")
        try:
            parsed = parse_comed_five_minute(payload, zone=zone)
        except ValueError as exc:
            raise SourceError(f"GET {self.five_minute_path} for {zone}: {exc}") from None
        parsed.rows = [row for row in parsed.rows if start <= row["interval_start"] < end]
        return parsed

    def day_ahead(self, zone: str, day: date) -> Parsed:
        """The day-ahead hourly prices of a UTC day (empty when the source has none)."""
        if not self.day_ahead_path:
            return Parsed()
        payload = self.get_json(self.day_ahead_path, {"zone": zone, "date": day.isoformat()}, "day-ahead prices as JSON")
        if not isinstance(payload, dict):
            raise SourceError(f"GET {self.day_ahead_path} for {zone} {day} answered {type(payload).__name__}; expected a JSON object")
        return parse_generic_prices(payload, zone=zone)
