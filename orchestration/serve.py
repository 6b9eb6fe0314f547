"""Serve the platform: Dagster webserver and daemon, and the DR webhook receiver, as
child processes of `wattline`.

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


WORKSPACE = str(REPO_ROOT / "workspace.yaml")


def webserver_command(settings: WattlineSettings) -> list[str]:
    """The Dagster webserver on WATTLINE_UI_HOST (loopback unless the operator opens it)."""
    return [_bin("dagster-webserver"), "-w", WORKSPACE, "-h", settings.ui_host, "-p", str(settings.ui_port)]


def daemon_command() -> list[str]:
    return [_bin("dagster-daemon"), "run", "-w", WORKSPACE]


def receiver_command(settings: WattlineSettings) -> list[str]:
    """The DR webhook receiver (sensors/webhook_app.py) on the UI's host, loopback unless
    the operator opens it, bounded against slow clients (sensors/webhook_server.py)."""
    from sensors.webhook_server import uvicorn_options

    return [
        sys.executable, "-m", "uvicorn", "sensors.webhook_app:create_app", "--factory",
        "--host", settings.ui_host, "--port", str(settings.webhook_port), *uvicorn_options(),
    ]


def start_dagster(settings: WattlineSettings) -> list[subprocess.Popen]:
    webserver = subprocess.Popen(webserver_command(settings), cwd=REPO_ROOT, start_new_session=True)
    daemon = subprocess.Popen(daemon_command(), cwd=REPO_ROOT, start_new_session=True)
    return [webserver, daemon]


def start_receiver(settings: WattlineSettings) -> subprocess.Popen:
    return subprocess.Popen(receiver_command(settings), cwd=REPO_ROOT, start_new_session=True)


def wait_for_ui(settings: WattlineSettings, processes: list[subprocess.Popen], timeout_s: float = 180) -> str:
    url = f"http://{settings.ui_host}:{settings.ui_port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("the Dagster webserver, its daemon or the webhook receiver exited during start-up (see its output above)")
        try:
            if requests.get(f"{url}/server_info", timeout=2).ok:
                return url
        except requests.RequestException:
            pass
        time.sleep(1)
    raise RuntimeError(f"the Dagster UI did not answer on {url} within {timeout_s:.0f} s")


def stop(processes: list[subprocess.Popen], grace_s: float = 15.0) -> None:
    """SIGTERM every process group, give them `grace_s` between them to finish, then
    SIGKILL the groups still there: Ctrl-C always ends the platform, and in bounded time."""
    for process in processes:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in processes:
        # The group too: a server's own children (a code server, a run worker) go with it.
        _signal_group(process, signal.SIGKILL)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass  # the group is gone already


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve_forever(settings: WattlineSettings, print_=print) -> int:
    """Run webserver + daemon + webhook receiver until Ctrl-C, SIGTERM (a service
    manager's stop) or until one of them dies; returns an exit code."""
    # Both signals stop the platform, whatever this process inherited: a shell starts
    # background jobs with SIGINT ignored, and SIGTERM would otherwise end this process
    # alone and orphan the servers (they run in sessions of their own).
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    processes = [*start_dagster(settings), start_receiver(settings)]
    try:
        url = wait_for_ui(settings, processes)
        print_(f"Dagster UI: {url}   (Ctrl-C to stop)")
        print_(f"DR webhooks: http://{settings.ui_host}:{settings.webhook_port}/webhooks/utility/dr-notification")
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        print_("a Dagster process or the webhook receiver exited; stopping the platform", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print_("stopping …")
        return 0
    finally:
        # A second Ctrl-C must not cut the shutdown short and orphan the servers.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop(processes)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
