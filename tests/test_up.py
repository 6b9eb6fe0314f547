"""`wattline up` serves the Dagster UI with the Wattline code location, and Ctrl-C stops
every process it started."""

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import requests

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_up_serves_the_code_location_and_stops_cleanly(tmp_path, warehouse, dbt_manifest):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
        "WATTLINE_HOME": str(tmp_path / "home"),
        "WATTLINE_DATABASE_URL": warehouse.url,
        "WATTLINE_UI_PORT": str(port),
        "WATTLINE_SIM_PORT": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "up"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        nodes = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = requests.post(
                    f"{url}/graphql", json={"query": "{ assetNodes { assetKey { path } } }"}, timeout=5
                ).json()
                nodes = answer.get("data", {}).get("assetNodes")
                if nodes:
                    break
            except requests.RequestException:
                pass
            time.sleep(2)
        assert process.poll() is None, process.stdout.read()
        keys = {"/".join(node["assetKey"]["path"]) for node in nodes or []}
        assert {"raw/meter_readings", "staging/stg_meter_readings", "marts/fct_load_15min"} <= keys

        children = psutil.Process(process.pid).children(recursive=True)
        assert any("dagster-daemon" in " ".join(c.cmdline()) for c in children)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [c.cmdline() for c in alive]
    finally:
        if process.poll() is None:
            process.kill()
