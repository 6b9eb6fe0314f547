"""The code location loads, is one lineage, and keeps heavy imports out of load."""

import json
import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, Definitions

from orchestration.definitions import defs

REPO = Path(__file__).resolve().parents[1]
RAW, STG, FCT = AssetKey(["raw", "meter_readings"]), AssetKey(["staging", "stg_meter_readings"]), AssetKey(["marts", "fct_load_15min"])


def test_definitions_are_loadable(dbt_manifest):
    Definitions.validate_loadable(defs)


def test_telemetry_and_dbt_are_one_lineage():
    graph = defs.resolve_asset_graph()
    assert graph.get(STG).parent_keys == {RAW}
    # An incremental mart also lists the raw tables it reads through views: a reload of
    # an hour of readings marks that hour's marts out of date.
    assert graph.get(FCT).parent_keys == {STG, AssetKey(["staging", "stg_meters"]), RAW, AssetKey(["raw", "meters"])}
    # Every staging view reads a raw table a source asset loads: lineage runs unbroken
    # from the APIs to the marts.
    for table in ["facilities", "meters", "weather_hourly", "grid_prices", "grid_carbon_intensity"]:
        raw = AssetKey(["raw", table])
        assert graph.get(raw).is_materializable, raw
    emissions = AssetKey(["marts", "fct_emissions_hourly"])
    assert AssetKey(["raw", "grid_carbon_intensity"]) in graph.get_ancestor_asset_keys(emissions)
    # The 15-minute mart is partitioned like the telemetry it reads, hour for hour.
    assert graph.get(FCT).partitions_def == graph.get(RAW).partitions_def
    assert graph.get(STG).partitions_def is None


def test_every_asset_is_described_grouped_owned_and_kinded():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name and node.group_name != "default", key
        assert node.owners, key
        assert node.kinds, key


def test_workspace_validates_with_the_dagster_cli(dbt_manifest):
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, capture_output=True, text=True,
        # `make validate` from a user's shell: no instance of a runtime that may be stopped.
        env={k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "wattline" in out.stdout + out.stderr


def test_validating_before_the_manifest_is_prepared_says_how_to_prepare_it(tmp_path):
    """`dagster definitions validate` straight after a clone, before `make` prepared the
    manifest: the error names the command to run, not only a missing file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "WATTLINE_"))}
    # A manifest folder nothing was prepared in, as on a fresh clone.
    env["WATTLINE_DBT_TARGET_PATH"] = str(tmp_path / "target")
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode != 0
    assert "has not been prepared: run `make manifest`" in out.stdout + out.stderr


def test_heavy_libraries_are_not_imported_at_load(dbt_manifest):
    code = (
        "import sys, json; import orchestration.definitions; "
        "print(json.dumps([m for m in ('prophet', 'great_expectations', 'matplotlib', 'cmdstanpy') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_job_runs_its_steps_in_the_run_process():
    """One process per run: a process per step would import the code location again for
    each (seconds of CPU on two cores), which is what kept DR plans and marts behind."""
    jobs = [job.name for job in defs.resolve_all_job_defs()]
    assert {"dr_plan_job", "telemetry_job", "incremental_marts_job"} <= set(jobs)
    assert {name: defs.resolve_job_def(name).executor_def.name for name in jobs} == dict.fromkeys(jobs, "in_process")
