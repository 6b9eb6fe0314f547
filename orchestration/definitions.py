"""The Wattline code location: every asset, job, resource and sensor, in one place."""

from dagster import Definitions

from assets import dbt_models, registry, telemetry
from orchestration import jobs
from resources.dbt import dbt_cli
from resources.postgres import PostgresResource
from resources.telemetry_api import TelemetryApiResource

defs = Definitions(
    assets=[
        registry.facilities,
        registry.meters,
        telemetry.meter_readings,
        dbt_models.dbt_incremental_models,
        dbt_models.dbt_models,
    ],
    jobs=[jobs.registry_job, jobs.telemetry_job, jobs.incremental_marts_job, jobs.unpartitioned_models_job],
    resources={
        "postgres": PostgresResource(),
        "telemetry_api": TelemetryApiResource(),
        "dbt": dbt_cli(),
    },
)
