"""Grid prices: ComEd's 5-minute feed and a generic JSON/CSV form, normalised to one
unit, currency per MWh (ComEd's ¢/kWh × 10 = USD/MWh). The currency is what the feed
states (a code, or a unit such as GBP/MWh); where it states none (ComEd's bare ¢/kWh)
it stays empty and the warehouse takes the zone's (dbt seed price_zone_currencies):
never an assumed USD."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field

from resources.http import SourceApiResource, SourceError
from resources.parsing import Parsed, parse_utc

FIVE_MINUTES = timedelta(minutes=5)
# ISO 4217 codes of the currencies electricity markets price in; a code outside it is
# more likely a typo or a token than a market (BTC/MWh).
CURRENCIES = ("USD", "EUR", "GBP", "AUD", "CAD", "NZD", "JPY", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK",
              "HUF", "RON", "BGN", "INR", "BRL", "MXN", "CLP", "ZAR", "SGD", "KRW", "CNY", "TRY")
# A unit a feed may state: a currency per MWh or kWh, or hundredths of one per kWh (¢/kWh,
# p/kWh), whose currency the feed or the zone must then give (pence are GBP's).
_UNIT = re.compile(r"^(?:(?P<code>[A-Z]{3})/(?P<per>MWh|kWh)|(?P<minor>¢|c|cents|p|pence)/kWh)$")
_MINOR_CURRENCY = {"p": "GBP", "pence": "GBP"}


def per_mwh(unit: str | None) -> tuple[str | None, float] | None:
    """(currency the unit names or None, multiplier to currency per MWh); None for a unit
    that is not a price per energy in a known currency."""
    match = _UNIT.match(unit or "")
    if not match:
        return None
    if match["code"]:
        return (match["code"], 1.0 if match["per"] == "MWh" else 1000.0) if match["code"] in CURRENCIES else None
    return _MINOR_CURRENCY.get(match["minor"]), 10.0


def parse_comed_five_minute(payload: list, zone: str = "COMED", currency: str | None = None) -> Parsed:
    """ComEd `type=5minutefeed`: `[{"millisUTC": "…", "price": "…"}]`, ¢/kWh as strings,
    newest first. Each price covers the 5 minutes ending at millisUTC. Rows come out
    oldest first, per MWh, in `currency` when the source implies one (ComEd's own feed:
    USD), else with none: the format names no currency."""
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
            "price_per_mwh": round(cents * 10.0, 4), "currency": currency, "source": "comed_5min",
        })
    parsed.rows.sort(key=lambda row: row["interval_start"])
    return parsed


def parse_generic_prices(body: dict | str, zone: str | None = None) -> Parsed:
    """Generic prices: JSON `{"zone", "currency", "unit", "prices": [{"start", "end", "price"}]}`
    or CSV with columns start, end, price and optionally unit, currency, zone. The currency is
    the one stated (field or unit); a price whose field and unit disagree is rejected."""
    if isinstance(body, str):
        points = list(csv.DictReader(io.StringIO(body)))
        default_unit, default_zone, default_currency = None, zone, None
    else:
        points = body.get("prices", [])
        default_unit, default_zone, default_currency = body.get("unit"), body.get("zone", zone), body.get("currency")
    parsed = Parsed()
    for point in points:
        unit = point.get("unit") or default_unit
        conversion = per_mwh(unit)
        if conversion is None:
            parsed.reject(point, f"unknown price unit {unit!r}; known: <ISO 4217 code>/MWh or /kWh "
                                 f"(codes: {', '.join(CURRENCIES)}), ¢/kWh, cents/kWh, p/kWh")
            continue
        unit_currency, factor = conversion
        stated = point.get("currency") or default_currency
        if stated is not None and stated not in CURRENCIES:
            parsed.reject(point, f"unknown currency {stated!r}; known: {', '.join(CURRENCIES)}")
            continue
        if stated and unit_currency and stated != unit_currency:
            parsed.reject(point, f"currency {stated} contradicts the unit {unit}")
            continue
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
            "price_per_mwh": round(price * factor, 4), "currency": stated or unit_currency,
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
    five_minute_currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 currency of the ComEd-format feed's ¢/kWh when the source implies one for every "
        "zone (ComEd's own API: USD); empty = each zone's currency (dbt seed price_zone_currencies).",
    )
    day_ahead_path: str | None = Field(
        default="/v1/prices/day-ahead",
        description="Path of the generic day-ahead JSON (`zone`, `date`); empty = the source has none.",
    )

    def five_minute(self, zone: str, start: datetime, end: datetime, local_tz: str) -> Parsed:
        """5-minute prices of intervals starting in [start, end), per MWh of the
        five_minute_currency (empty: the zone's, set in the warehouse).

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
            parsed = parse_comed_five_minute(payload, zone=zone, currency=self.five_minute_currency)
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
