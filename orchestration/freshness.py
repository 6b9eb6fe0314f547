"""Freshness policies: each asset that should keep up with the clock turns amber, then red,
in the UI when it falls behind its cadence.

The daemon's freshness evaluator (every 30 s) compares each asset's last materialisation
with its windows: no run is launched to find out. An asset warns once it missed a slow
run's worth of its cadence and fails once it missed a few cadences.
"""

from collections.abc import Sequence
from datetime import timedelta

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    FreshnessPolicy,
    map_asset_specs,
)

# (warn after, fail after, assets): the cadence of what loads them, plus slow runs.
WINDOWS: list[tuple[timedelta, timedelta, list[str]]] = [
    # The open hour and the real-time prices are reloaded every 5 minutes.
    (timedelta(minutes=12), timedelta(minutes=30), ["raw/meter_readings", "raw/grid_prices"]),
    # The time-partitioned marts follow each telemetry reload, a dbt run behind it.
    (timedelta(minutes=20), timedelta(minutes=45), [
        "marts/fct_load_15min", "marts/fct_load_hourly", "marts/fct_emissions_hourly",
        "marts/fct_energy_cost_hourly", "marts/fct_facility_utilization_15min",
    ]),
    # What the alerts read, rebuilt after those.
    (timedelta(minutes=30), timedelta(hours=1), [
        "marts/fct_carbon_budget_status", "marts/fct_meter_anomalies", "marts/fct_recommendations",
    ]),
    # Weather and carbon are reloaded hourly at :07, the forecast hourly at :20.
    (timedelta(minutes=90), timedelta(hours=3), ["raw/weather_hourly", "raw/grid_carbon_intensity", "marts/fct_load_forecast"]),
    # The registry daily at 03:15 UTC.
    (timedelta(hours=26), timedelta(hours=50), ["raw/facilities", "raw/meters"]),
]

POLICIES: dict[AssetKey, FreshnessPolicy] = {
    AssetKey.from_user_string(key): FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)
    for warn, fail, keys in WINDOWS
    for key in keys
}


def _with_policy(spec: AssetSpec) -> AssetSpec:
    policy = POLICIES.get(spec.key)
    return spec.replace_attributes(freshness_policy=policy) if policy else spec


def with_freshness_policies(assets: Sequence[AssetsDefinition | AssetSpec]) -> Sequence[AssetsDefinition | AssetSpec]:
    """`assets` with the freshness policy of every key listed in WINDOWS attached."""
    return map_asset_specs(_with_policy, assets)
