"""dbt models (staging → marts) as Dagster assets, one lineage with the source assets.

Three sets, in the order a run builds them:
- `dbt_models`: seeds, staging views and dimensions, unpartitioned: what the marts read;
- `dbt_incremental_models`: the time-partitioned marts, one dbt invocation per backfill
  range, restricted to the range by vars;
- `dbt_derived_models`: tables rebuilt whole from the incremental marts (budget status,
  anomalies, recommendations, scores), unpartitioned.
The split follows the graph: one multi-asset holding models both upstream and
downstream of the incremental ones could not run in the same run as them.
"""

import json
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey, BackfillPolicy, TimeWindow
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from orchestration.partitions import hourly_partitions
from resources.dbt import dbt_project
from resources.postgres import PostgresResource

INCREMENTAL = "config.materialized:incremental"
DOWNSTREAM_OF_INCREMENTAL = f"{INCREMENTAL}+"


class WattlineDbtTranslator(DagsterDbtTranslator):
    """Keys are `<schema>/<name>` (the table BI reads), groups are the dbt folder
    (staging, intermediate, marts) or `seeds`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            # Sources are the raw tables the source assets load: raw/meter_readings.
            return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])
        schema = dbt_resource_props["config"].get("schema") or "public"
        return AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "seeds"
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "dbt"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return ["team:energy-data"]


translator = WattlineDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def partition_window_vars(window: TimeWindow) -> dict[str, str]:
    """The dbt vars that restrict incremental models to a partition window."""
    return {"min_ts": window.start.isoformat(), "max_ts": window.end.isoformat()}


@dbt_assets(
    manifest=dbt_project.manifest_path,
    select=INCREMENTAL,
    partitions_def=hourly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    dagster_dbt_translator=translator,
    project=dbt_project,
    name="dbt_incremental_models",
)
def dbt_incremental_models(context: AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource):
    # `postgres` is here for its setup: it resolves the warehouse (starting the embedded
    # server if needed) and exports dbt's connection variables before dbt runs.
    vars_json = json.dumps(partition_window_vars(context.partition_time_window))
    yield from dbt.cli(["build", "--vars", vars_json], context=context).stream().fetch_row_counts()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    exclude=DOWNSTREAM_OF_INCREMENTAL,
    dagster_dbt_translator=translator,
    project=dbt_project,
    name="dbt_models",
)
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource):
    yield from dbt.cli(["build"], context=context).stream().fetch_row_counts()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    select=DOWNSTREAM_OF_INCREMENTAL,
    exclude=INCREMENTAL,
    dagster_dbt_translator=translator,
    project=dbt_project,
    name="dbt_derived_models",
)
def dbt_derived_models(context: AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource):
    yield from dbt.cli(["build"], context=context).stream().fetch_row_counts()
