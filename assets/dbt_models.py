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
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    BackfillPolicy,
    TimeWindow,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from dagster_shared.record import replace

from assets.budget_burndown import with_burn_down
from orchestration.conditions import after_inputs, after_open_hour, after_slow_inputs
from orchestration.partitions import hourly_partitions
from resources.dbt import dbt_project, prepared_manifest
from resources.postgres import PostgresResource

INCREMENTAL = "config.materialized:incremental"
# Unit tests check the models' SQL against fixed rows: the test suite runs them
# (tests/test_marts.py). In a run they would only cost time, and on a new warehouse fail:
# dbt reads their inputs' columns from relations a partial build has not made yet.
BUILD = ["build", "--exclude-resource-type", "unit_test"]
# The concurrency pool of every dbt build: the instance lets one run hold it at a time.
DBT_POOL = "dbt"
DOWNSTREAM_OF_INCREMENTAL = f"{INCREMENTAL}+"


class WattlineDbtTranslator(DagsterDbtTranslator):
    """Keys are `<schema>/<name>` (the table BI reads), groups are the dbt folder
    (staging, intermediate, marts) or `seeds`; every model of one set shares the set's
    automation condition (orchestration/conditions.py)."""

    def __init__(self, automation_condition: AutomationCondition):
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self.automation_condition = automation_condition

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

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> AutomationCondition | None:
        return self.automation_condition

    def get_asset_check_spec(self, asset_spec: AssetSpec, manifest: Mapping[str, Any], unique_id: str, project) -> AssetCheckSpec | None:
        """dbt's generic tests carry no description: say in plain words what fails them."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return replace(spec, description=check_description(manifest["nodes"][unique_id]))

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> AssetSpec:
        """An incremental model also lists the sources it reads through views as inputs:
        the view adds no partition of its own, so this is how a reload of one hour of
        raw telemetry marks that hour's marts out of date (and no other hour's)."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        if manifest["nodes"].get(unique_id, {}).get("config", {}).get("materialized") != "incremental":
            return spec
        known = {dep.asset_key for dep in spec.deps}
        through_views = [
            self.get_asset_spec(manifest, source_id, project).key for source_id in sources_through_views(manifest, unique_id)
        ]
        extra = [AssetDep(key) for key in dict.fromkeys(through_views) if key not in known]
        return spec.replace_attributes(deps=[*spec.deps, *extra]) if extra else spec


def check_description(test: Mapping[str, Any]) -> str:
    """What makes a dbt generic test fail, in the words an operator reads in the UI."""
    metadata = test.get("test_metadata") or {}
    kwargs = metadata.get("kwargs", {})
    column = f"`{kwargs.get('column_name')}`"
    severity = "warns" if test.get("config", {}).get("severity", "error").lower() == "warn" else "fails"
    match metadata.get("name"):
        case "not_null":
            text = f"{severity.capitalize()} when a row has no {column}."
        case "unique":
            text = f"{severity.capitalize()} when a {column} value appears in more than one row."
        case "accepted_values":
            values = ", ".join(str(v) for v in kwargs.get("values", []))
            text = f"{severity.capitalize()} when {column} holds a value other than {values}."
        case "relationships":
            target = kwargs.get("to", "").removeprefix("ref('").removesuffix("')")
            text = f"{severity.capitalize()} when a {column} has no match in `{target}`.`{kwargs.get('field')}`."
        case "unique_combination_of_columns":
            columns = ", ".join(kwargs.get("combination_of_columns", []))
            text = f"{severity.capitalize()} when two rows share the same ({columns})."
        case name:
            text = f"dbt test `{name or test['name']}`: {severity} when its query returns rows."
    return f"{text} To list the failing rows: `dbt test --select {test['name']} --store-failures` in dbt_project/."


def sources_through_views(manifest: Mapping[str, Any], unique_id: str) -> list[str]:
    """The dbt sources `unique_id` reads directly or through views, in manifest order."""
    found: list[str] = []
    pending = list(manifest["nodes"][unique_id]["depends_on"]["nodes"])
    seen: set[str] = set()
    while pending:
        upstream = pending.pop(0)
        if upstream in seen:
            continue
        seen.add(upstream)
        if upstream.startswith("source."):
            found.append(upstream)
            continue
        node = manifest["nodes"].get(upstream, {})
        if node.get("config", {}).get("materialized") in ("view", "ephemeral"):
            pending.extend(node["depends_on"]["nodes"])
    return found


def partition_window_vars(window: TimeWindow) -> dict[str, str]:
    """The dbt vars that restrict incremental models to a partition window.

    The macros quote them into SQL as timestamptz literals (dbt_project/macros), so only
    timezone-aware datetimes get here, written by this code in UTC: never a string from
    a run tag or partition key (Dagster parses those into the window, or refuses them)."""
    bounds = {"min_ts": window.start, "max_ts": window.end}
    for name, value in bounds.items():
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TypeError(f"{name} must be a timezone-aware datetime, got {type(value).__name__} {str(value)[:40]!r}")
    return {name: value.astimezone(UTC).isoformat() for name, value in bounds.items()}


@dbt_assets(
    manifest=prepared_manifest(),
    select=INCREMENTAL,
    partitions_def=hourly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    dagster_dbt_translator=WattlineDbtTranslator(after_open_hour()),
    project=dbt_project,
    pool=DBT_POOL,
    name="dbt_incremental_models",
)
def dbt_incremental_models(context: AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource):
    # `postgres` is here for its setup: it resolves the warehouse (starting the embedded
    # server if needed) and exports dbt's connection variables before dbt runs.
    vars_json = json.dumps(partition_window_vars(context.partition_time_window))
    yield from _in_this_directory(dbt.cli([*BUILD, "--vars", vars_json], context=context).stream().fetch_row_counts())


@dbt_assets(
    manifest=prepared_manifest(),
    exclude=DOWNSTREAM_OF_INCREMENTAL,
    dagster_dbt_translator=WattlineDbtTranslator(after_slow_inputs()),
    project=dbt_project,
    pool=DBT_POOL,
    name="dbt_models",
)
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource):
    yield from _in_this_directory(dbt.cli(BUILD, context=context).stream().fetch_row_counts())


@dbt_assets(
    manifest=prepared_manifest(),
    select=DOWNSTREAM_OF_INCREMENTAL,
    exclude=INCREMENTAL,
    dagster_dbt_translator=WattlineDbtTranslator(after_inputs(AssetSelection.assets(dbt_incremental_models))),
    project=dbt_project,
    pool=DBT_POOL,
    name="dbt_derived_models",
)
def dbt_derived_models(context: AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource):
    for event in _in_this_directory(dbt.cli(BUILD, context=context).stream().fetch_row_counts()):
        yield with_burn_down(event, context, postgres)


def _in_this_directory(events: Iterator) -> Iterator:
    """dbt's events, with the process's working directory as it was before. dagster-dbt's
    row-count threads each `pushd` into the dbt project at once, and the last to pop
    leaves the whole process in `dbt_project/`: every relative path after it (a run's
    code origin, a default `WATTLINE_HOME`) then resolves there."""
    cwd = os.getcwd()
    try:
        yield from events
    finally:
        os.chdir(cwd)
