"""`wattline up` on an empty warehouse keeps itself fresh: the automation loads the
registry, the open hour and today, and builds the marts after them, with nobody
triggering anything. Checked the way an operator would, through Dagster's GraphQL API,
the warehouse, and the UI in headless Chromium."""

import os
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import requests
import sqlalchemy as sa

from orchestration.runs import HOURLY_KEY_FORMAT
from orchestration.tour import (
    WATTLINE_GROUPS,
    Page,
    browser_page,
    find_chromium,
    open_page,
    take_screenshots,
)
from tests.conftest import create_database, drop_database, missing_prerequisite
from tests.support import free_port

pytestmark = pytest.mark.e2e

FRESH_WITHIN_S = 420


@dataclass
class Platform:
    url: str
    process: subprocess.Popen
    warehouse: object
    log: Path
    started: datetime
    home: Path

    def graphql(self, query: str, **variables) -> dict:
        answer = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=30).json()
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def output(self) -> str:
        return self.log.read_text()[-4000:]


@pytest.fixture(scope="module")
def platform(pg_server, dbt_manifest, tmp_path_factory):
    warehouse = create_database(pg_server, "platform")
    dagster_storage = create_database(pg_server, "platform_dagster")
    home = tmp_path_factory.mktemp("platform")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
        "WATTLINE_HOME": str(home / "home"),
        "WATTLINE_DATABASE_URL": warehouse.url,
        "WATTLINE_DAGSTER_DATABASE_URL": dagster_storage.url,
        "WATTLINE_UI_PORT": str(port),
        "WATTLINE_WEBHOOK_PORT": str(free_port()),
        "WATTLINE_SIM_PORT": "0",
        "WATTLINE_SIM_FACILITIES": "2",
    }
    log = home / "up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", "up"], env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    platform = Platform(f"http://127.0.0.1:{port}", process, warehouse, log, datetime.now(UTC), home / "home")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"{platform.url}/server_info", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(2)
        assert process.poll() is None, platform.output()
        yield platform
    finally:
        stop_platform(process)
        drop_database(pg_server, warehouse)
        drop_database(pg_server, dagster_storage)


def stop_platform(process: subprocess.Popen) -> None:
    """SIGTERM `wattline up` as a service manager would; if it is still there after a
    minute, kill it and every process it started (they run in sessions of their own)."""
    if process.poll() is not None:
        return
    family = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in family:
        if child.is_running():
            child.kill()


MATERIALISATIONS = """
query($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    assetMaterializations(limit: 5) { partition runId }
  }
}
"""

RUN_TAGS = """
query($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) { ... on Runs { results { runId status tags { key value } } } }
}
"""


def test_the_automation_loads_the_open_hour_and_builds_its_marts_unprompted(platform):
    open_hour = platform.started.replace(minute=0, second=0, microsecond=0)
    watched = ["raw/meter_readings", "marts/fct_load_hourly"]
    keys = [{"path": key.split("/")} for key in watched]
    deadline = time.monotonic() + FRESH_WITHIN_S
    fresh: dict[str, list] = {}
    while time.monotonic() < deadline and platform.process.poll() is None:
        nodes = platform.graphql(MATERIALISATIONS, keys=keys)["assetNodes"]
        fresh = {
            "/".join(node["assetKey"]["path"]): [
                m for m in node["assetMaterializations"]
                # The open hour when the platform started, or a later one.
                if m["partition"] >= f"{open_hour:{HOURLY_KEY_FORMAT}}"
            ]
            for node in nodes
        }
        if all(fresh.get(key) for key in watched):
            break
        time.sleep(5)
    assert all(fresh.get(key) for key in watched), f"not materialised within {FRESH_WITHIN_S} s: {fresh}\n{platform.output()}"

    # Every run behind them was launched by a schedule or the automation, none by hand,
    # and the marts by the automation.
    run_ids = sorted({m["runId"] for ms in fresh.values() for m in ms})
    runs = platform.graphql(RUN_TAGS, ids=run_ids)["runsOrError"]["results"]
    assert len(runs) == len(run_ids)
    launched_by = {}
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        launched_by[run["runId"]] = tags.get("dagster/schedule_name") or (
            "automation" if tags.get("dagster/from_automation_condition") == "true" else None
        )
    assert None not in launched_by.values(), launched_by
    assert {launched_by[m["runId"]] for m in fresh["marts/fct_load_hourly"]} == {"automation"}

    # What the operator sees in the warehouse: readings of the open hour, and its rollup.
    engine = sa.create_engine(platform.warehouse.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            readings = conn.scalar(sa.text("select count(*) from raw.meter_readings where ts >= :h"), {"h": open_hour})
            hourly = conn.scalar(sa.text("select count(*) from marts.fct_load_hourly where hour_start >= :h"), {"h": open_hour})
    finally:
        engine.dispose()
    assert readings > 0 and hourly > 0, (readings, hourly)
    # All of it on the configured server: no embedded one was started.
    assert not (platform.home / "pgdata").exists()


REPOSITORY = """
{
  repositoriesOrError { ... on RepositoryConnection { nodes {
    name
    location { name }
    schedules { name scheduleState { status } }
    sensors { name sensorState { status } }
  } } }
  assetNodes {
    assetKey { path } groupName description kinds owners { ... on TeamAssetOwner { team } }
    automationCondition { label }
    assetChecksOrError { ... on AssetChecks { checks { name description } } }
  }
}
"""

FRESHNESS = """
query($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) { assetKey { path } freshnessStatusInfo { freshnessStatus } }
}
"""


def test_graphql_lists_the_assets_checks_and_running_schedules_and_sensors(platform):
    data = platform.graphql(REPOSITORY)
    (repository,) = [r for r in data["repositoriesOrError"]["nodes"] if r["location"]["name"] == "wattline"]
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert set(schedules) >= {"open_hour_telemetry", "five_minute_prices", "hourly_weather_and_carbon", "daily_registry",
                              "hourly_marts_settlement", "daily_marts_settlement", "daily_retention"}
    assert set(schedules.values()) == {"RUNNING"}, schedules
    assert set(sensors) >= {"wattline_automation", "dr_events_sensor", "dr_lifecycle_sensor", "alert_conditions_sensor",
                            "run_failure_alerts", "notifications_sensor"}
    assert set(sensors.values()) == {"RUNNING"}, sensors

    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(WATTLINE_GROUPS) <= {n["groupName"] for n in nodes.values()}
    # Each asset tells the operator what it is, who owns it and what it runs on.
    for key, node in nodes.items():
        assert node["description"] and node["kinds"] and node["owners"], key
    automated = {key for key, node in nodes.items() if node["automationCondition"]}
    assert {"raw/meter_readings", "marts/fct_load_hourly", "marts/fct_carbon_budget_status", "marts/fct_load_forecast"} <= automated
    checks = {c["name"]: c["description"] for n in nodes.values() for c in (n["assetChecksOrError"] or {}).get("checks", [])}
    # The Great Expectations suites, a dbt test, the forecast's and the DR plan's own checks.
    assert {
        "readings_expectations", "weather_expectations", "price_expectations", "carbon_expectations",
        "not_null_fct_load_hourly_facility_id", "accuracy_within_ashrae_guideline_14", "plan_meets_the_target",
    } <= set(checks), sorted(checks)
    assert all(checks.values()), [name for name, text in checks.items() if not text]

    # Freshness: the telemetry the automation loaded counts as fresh.
    deadline = time.monotonic() + 120
    status = None
    while time.monotonic() < deadline:
        (node,) = platform.graphql(FRESHNESS, keys=[{"path": ["raw", "meter_readings"]}])["assetNodes"]
        status = (node["freshnessStatusInfo"] or {}).get("freshnessStatus")
        if status == "HEALTHY":
            break
        time.sleep(5)
    assert status == "HEALTHY", status


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_the_dagster_ui_in_headless_chromium_shows_the_wattline_groups(platform, tmp_path):
    if find_chromium() is None:
        missing_prerequisite("Debian's chromium is not installed (make test installs it where it can: as root or with sudo)")
    lineage = Page("lineage", "/asset-groups", "telemetry", "")
    with browser_page() as page:
        open_page(page, platform.url, lineage)
        shown = set(page.inner_text("body").split())
    missing = [group for group in WATTLINE_GROUPS if group not in shown]
    assert not missing, f"the global lineage does not list the groups {missing}"

    out_dir = Path(os.environ.get("WATTLINE_TEST_TOUR_DIR") or tmp_path)
    shots = take_screenshots(platform.url, out_dir)
    for shot in shots:
        assert _png_size(shot) == (1440, 900) and shot.stat().st_size > 20_000, shot


def test_sigterm_stops_every_process_of_the_platform(platform):
    children = psutil.Process(platform.process.pid).children(recursive=True)
    assert any("dagster-daemon" in " ".join(c.cmdline()) for c in children)
    platform.process.send_signal(signal.SIGTERM)
    try:
        code = platform.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        code = f"still running 60 s after SIGTERM:\n{platform.output()}"
    assert code == 0, code
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [c.cmdline() for c in alive]
