"""Grid carbon intensity in the Electricity Maps API v3 format."""

import logging
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field

from resources.http import SourceApiResource, SourceError
from resources.parsing import Parsed, parse_utc

# Electricity Maps serves at most 10 days of hourly history per past-range request.
PAST_RANGE_MAX = timedelta(days=10)

log = logging.getLogger(__name__)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_electricity_maps(payload: dict) -> Parsed:
    """Rows (zone, hour_start UTC, gCO2eq/kWh, factor type, estimated) from a `latest`
    point, a `history` list or a `past-range` `data` list."""
    if not isinstance(payload, dict):
        raise ValueError(f"not an Electricity Maps response: expected a JSON object, got {type(payload).__name__}")
    if "history" in payload:
        points = payload["history"]
    elif "data" in payload:
        points = payload["data"]
    elif "carbonIntensity" in payload:
        points = [payload]
    else:
        raise ValueError("not an Electricity Maps carbon-intensity response: no carbonIntensity, history or data")
    parsed = Parsed()
    for point in points:
        zone = point.get("zone") or payload.get("zone")
        value = point.get("carbonIntensity")
        try:
            hour = parse_utc(point["datetime"])
        except (KeyError, TypeError, ValueError):
            parsed.reject(point, "needs datetime (ISO 8601)")
            continue
        if value is None:
            # Electricity Maps answers null where it has no estimate: keep the gap visible.
            parsed.reject(point, "carbonIntensity is null")
            continue
        if not isinstance(value, int | float) or value < 0:
            parsed.reject(point, f"carbonIntensity must be a non-negative number, got {value!r}")
            continue
        parsed.rows.append({
            "zone": zone, "hour_start": hour, "carbon_intensity_g_per_kwh": float(value),
            "factor_type": point.get("emissionFactorType") or "lifecycle",
            "is_estimated": bool(point.get("isEstimated", False)),
            "estimation_method": point.get("estimationMethod"),
        })
    parsed.rows.sort(key=lambda row: (row["zone"], row["hour_start"]))
    return parsed


class CarbonApiResource(SourceApiResource):
    """Electricity Maps (API v3) or a compatible server: hourly grid carbon intensity."""

    url_setting: ClassVar[str] = "carbon_api_url"
    feed: ClassVar[str] = "carbon-intensity API (Electricity Maps)"

    factor_types: list[str] = Field(
        default=["lifecycle", "direct"],
        description="Emission factor types to fetch: lifecycle (Electricity Maps' default) and/or direct.",
    )

    def auth_headers(self) -> dict[str, str] | None:
        """The `auth-token` header, for WATTLINE_CARBON_API_URL only: a `base_url` set in
        run config to another server (anyone with Launchpad access can set one) gets no
        token. A redirect to another host drops it too (resources/http.py)."""
        from orchestration.settings import get_settings

        settings = get_settings()
        token = settings.carbon_api_token
        if token is None:
            return None
        if settings.carbon_api_url is None or _origin(self.resolved_base_url()) != _origin(settings.carbon_api_url):
            log.warning("WATTLINE_CARBON_API_TOKEN is not sent: the carbon API in use is not WATTLINE_CARBON_API_URL")
            return None
        return {"auth-token": token.get_secret_value()}

    def past_range(self, zone: str, start: datetime, end: datetime, factor_type: str) -> Parsed:
        """Hours starting in [start, end), paged by the API's 10-day limit."""
        headers = self.auth_headers()
        parsed = Parsed()
        page_start = start
        while page_start < end:
            page_end = min(end, page_start + PAST_RANGE_MAX)
            params = {"zone": zone, "start": _iso(page_start), "end": _iso(page_end), "emissionFactorType": factor_type}
            payload = self.get_json("/v3/carbon-intensity/past-range", params, "Electricity Maps past-range JSON", headers=headers)
            try:
                page = parse_electricity_maps(payload)
            except ValueError as exc:
                raise SourceError(f"GET /v3/carbon-intensity/past-range for {zone}: {exc}") from None
            parsed.rows += [row for row in page.rows if start <= row["hour_start"] < end]
            parsed.rejected += page.rejected
            page_start = page_end
        for row in parsed.rows:
            row["zone"] = row["zone"] or zone
            if row["factor_type"] != factor_type:
                raise SourceError(f"asked {zone} for {factor_type} intensity, got {row['factor_type']}")
        return parsed
