"""The dbt project and the dbt CLI resource that runs it.

The manifest is prepared once (`wattline prepare`, which `make` runs after install,
or `dagster dev` through `prepare_if_dev`), never parsed at code-location load.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from orchestration.settings import get_settings

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"

dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR,
    profiles_dir=DBT_PROJECT_DIR,
    target_path=Path(get_settings().dbt_target_path),
)
dbt_project.prepare_if_dev()


def prepared_manifest() -> Path:
    """The manifest `make` prepared. A code location loaded before it was (`dagster dev`
    or `dagster definitions validate` straight after a clone) is told how to prepare it,
    not only that a file is missing."""
    path = dbt_project.manifest_path
    if not path.exists():
        raise FileNotFoundError(
            f"the dbt manifest {path} has not been prepared: run `make manifest` (or `wattline prepare` "
            "in the project's environment) and load the code location again"
        )
    return path


def dbt_executable() -> str:
    """dbt from this interpreter's environment, so an unactivated .venv still finds it."""
    beside_python = Path(sys.executable).parent / "dbt"
    return str(beside_python) if beside_python.exists() else (shutil.which("dbt") or "dbt")


def dbt_cli() -> DbtCliResource:
    return DbtCliResource(
        project_dir=dbt_project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
    )


TARGET_STAMP = "wattline-target.json"


def _target() -> dict[str, str]:
    """The database the profile renders to now: the manifest bakes its name into every
    relation name, which dagster-dbt queries (row counts) after dbt has run."""
    return {"dbname": os.environ.get("WATTLINE_PG_DBNAME", "wattline")}


def manifest_is_stale() -> bool:
    """True when the manifest is missing, older than a file of the dbt project, or was
    parsed for another database (its relation names would point there)."""
    manifest = dbt_project.manifest_path
    stamp = manifest.parent / TARGET_STAMP
    if not manifest.exists() or not stamp.exists():
        return True
    if json.loads(stamp.read_text()) != _target():
        return True
    built = manifest.stat().st_mtime
    target = DBT_PROJECT_DIR / "target"
    return any(
        path.stat().st_mtime > built
        for path in DBT_PROJECT_DIR.rglob("*")
        if path.suffix in {".sql", ".yml", ".csv"} and target not in path.parents
    )


def prepare_manifest(force: bool = False) -> Path:
    """Parse the dbt project into target/manifest.json (when stale) and return its path.

    Call it after the runtime exported the connection (`bootstrap()`)."""
    if force or manifest_is_stale():
        # dagster-dbt's own preparer would look for `dbt` on PATH; an unactivated venv has none.
        dbt_cli().cli(["parse", "--quiet"], target_path=dbt_project.target_path).wait()
        (dbt_project.manifest_path.parent / TARGET_STAMP).write_text(json.dumps(_target()))
    return dbt_project.manifest_path
