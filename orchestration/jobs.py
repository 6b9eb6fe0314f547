"""Jobs: named selections of the asset graph that operators and the CLI launch."""

from dagster import AssetSelection, define_asset_job

from assets.dbt_models import dbt_derived_models, dbt_incremental_models, dbt_models
from assets.demand_response import BASELINE, PLAN
from assets.dr_dispatch import DISPATCHES
from orchestration.partitions import dr_event_partitions
from orchestration.runs import BACKGROUND_RUN_TAGS

registry_job = define_asset_job(
    "registry_job",
    tags=BACKGROUND_RUN_TAGS,
    selection=AssetSelection.groups("registry"),
    description="Refresh the facility and meter registry from the head-end API.",
)

telemetry_job = define_asset_job(
    "telemetry_job",
    tags=BACKGROUND_RUN_TAGS,
    selection=AssetSelection.groups("telemetry"),
    description="Load meter readings for a range of hours (one run per backfill range).",
)

grid_and_weather_job = define_asset_job(
    "grid_and_weather_job",
    tags=BACKGROUND_RUN_TAGS,
    selection=AssetSelection.groups("weather", "grid"),
    description="Load weather, grid prices and grid carbon intensity for a range of days.",
)

weather_and_carbon_job = define_asset_job(
    "weather_and_carbon_job",
    tags=BACKGROUND_RUN_TAGS,
    selection=AssetSelection.groups("weather") | AssetSelection.assets(["raw", "grid_carbon_intensity"]),
    description="Load weather and grid carbon intensity for a day (the hourly schedule's job).",
)

prices_job = define_asset_job(
    "prices_job",
    tags=BACKGROUND_RUN_TAGS,
    selection=AssetSelection.assets(["raw", "grid_prices"]),
    description="Load a day's grid prices (the five-minute schedule's job: real-time prices come every 5 minutes).",
)

incremental_marts_job = define_asset_job(
    "incremental_marts_job",
    tags=BACKGROUND_RUN_TAGS,
    selection=AssetSelection.assets(dbt_incremental_models, dbt_derived_models),
    description=(
        "Rebuild the time-partitioned marts for a range of hours from the raw tables, then "
        "the marts computed from them (budget status, anomalies, recommendations, scores)."
    ),
)

unpartitioned_models_job = define_asset_job(
    "unpartitioned_models_job",
    tags=BACKGROUND_RUN_TAGS,
    selection=AssetSelection.assets(dbt_models),
    description="Load the seeds and (re)create the staging views and dimension tables the marts read.",
)

load_forecast_job = define_asset_job(
    "load_forecast_job",
    tags=BACKGROUND_RUN_TAGS,
    selection=AssetSelection.groups("forecasting"),
    description="Backtest, fit and forecast every active facility's load 48 hours ahead (Prophet, one model per facility).",
)

dr_plan_job = define_asset_job(
    "dr_plan_job",
    selection=AssetSelection.assets(BASELINE, PLAN),
    partitions_def=dr_event_partitions,
    description="Baseline and plan one demand-response event version: one run per dynamic partition, requested by dr_events_sensor.",
)

dr_dispatch_job = define_asset_job(
    "dr_dispatch_job",
    selection=AssetSelection.assets(DISPATCHES),
    partitions_def=dr_event_partitions,
    description="Send one planned demand-response event version's plan to the building-management system; requested by dr_lifecycle_sensor as the plan begins.",
)
