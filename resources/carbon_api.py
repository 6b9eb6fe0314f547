"""Grid carbon intensity in the Electricity Maps API v3 format."""

from resources.parsing import Parsed, parse_utc


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
