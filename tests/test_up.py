"""`wattline up` serves the Dagster UI with the Wattline code location, and Ctrl-C stops
every process it started."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from tests.support import free_port

pytestmark = pytest.mark.e2e


def test_up_serves_the_code_location_and_stops_on_ctrl_c(tmp_path, warehouse, dbt_manifest):
    # SIGTERM (a service manager's stop) is tested on the automated platform: test_platform.py.
    stop_signal = signal.SIGINT
    port, webhook_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
        "WATTLINE_HOME": str(tmp_path / "home"),
        "WATTLINE_DATABASE_URL": warehouse.url,
        "WATTLINE_UI_PORT": str(port),
        "WATTLINE_WEBHOOK_PORT": str(webhook_port),
        "WATTLINE_SIM_PORT": "0",
    }
    # A file, not a pipe: nobody reads a pipe until the end, and a full one would block
    # every process of the platform on its next log line.
    output = tmp_path / "up.log"
    log = output.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "up"], env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
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
        assert process.poll() is None, output.read_text()[-3000:]
        keys = {"/".join(node["assetKey"]["path"]) for node in nodes or []}
        assert {"raw/meter_readings", "staging/stg_meter_readings", "marts/fct_load_15min", "marts/fct_load_forecast"} <= keys
        # The DR webhook receiver answers beside the UI.
        health = None
        for _ in range(30):
            try:
                health = requests.get(f"http://127.0.0.1:{webhook_port}/healthz", timeout=5).json()
                break
            except requests.RequestException:
                time.sleep(1)
        assert health == {"status": "ok"}

        children = psutil.Process(process.pid).children(recursive=True)
        assert any("dagster-daemon" in " ".join(c.cmdline()) for c in children)
        process.send_signal(stop_signal)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = f"still running 60 s after {stop_signal.name}; its output:\n{output.read_text()[-3000:]}"
        assert code == 0, code
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [c.cmdline() for c in alive]
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
