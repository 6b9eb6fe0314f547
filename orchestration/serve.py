"""Serve the platform: Dagster webserver and daemon as child processes of `wattline`.

The children inherit the environment `bootstrap()` exported (DAGSTER_HOME, the
database and source URLs), so runs launched from the UI reach the same database and
the same sources as the CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from orchestration.settings import WattlineSettings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def start_dagster(settings: WattlineSettings) -> list[subprocess.Popen]:
    workspace = str(REPO_ROOT / "workspace.yaml")
    webserver = subprocess.Popen(
        [_bin("dagster-webserver"), "-w", workspace, "-h", settings.ui_host, "-p", str(settings.ui_port)],
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    daemon = subprocess.Popen(
        [_bin("dagster-daemon"), "run", "-w", workspace], cwd=REPO_ROOT, start_new_session=True
    )
    return [webserver, daemon]


def wait_for_ui(settings: WattlineSettings, processes: list[subprocess.Popen], timeout_s: float = 180) -> str:
    url = f"http://{settings.ui_host}:{settings.ui_port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("the Dagster webserver or daemon exited during start-up (see its output above)")
        try:
            if requests.get(f"{url}/server_info", timeout=2).ok:
                return url
        except requests.RequestException:
            pass
        time.sleep(1)
    raise RuntimeError(f"the Dagster UI did not answer on {url} within {timeout_s:.0f} s")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def serve_forever(settings: WattlineSettings, print_=print) -> int:
    """Run webserver + daemon until Ctrl-C or until one of them dies; returns an exit code."""
    processes = start_dagster(settings)
    try:
        url = wait_for_ui(settings, processes)
        print_(f"Dagster UI: {url}   (Ctrl-C to stop)")
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        print_("a Dagster process exited; stopping the platform", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print_("stopping …")
        return 0
    finally:
        stop(processes)
