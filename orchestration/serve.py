"""Serve the platform: Dagster webserver and daemon, and the DR webhook receiver, as
child processes of `wattline`.

The children inherit the environment `bootstrap()` exported (DAGSTER_HOME, the
database and source URLs), so runs launched from the UI reach the same database and
the same sources as the CLI. Their output goes to files under `WATTLINE_HOME/logs`; the
terminal gets the URLs, what the platform does on its own (restarting the embedded
server) and the children's errors, one line each.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from orchestration.settings import SettingsError, WattlineSettings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


WORKSPACE = str(REPO_ROOT / "workspace.yaml")


def check_ports(settings: WattlineSettings, simulator: bool = False) -> None:
    """Refuse to start when a port the platform serves on is taken, naming its variable:
    found after start-up, it was a traceback in the daemon's output while runs launched
    and failed. `simulator`: the simulator is served too (on WATTLINE_SIM_PORT, 0 = any)."""
    wanted = [
        ("WATTLINE_UI_PORT", settings.ui_host, settings.ui_port),
        ("WATTLINE_WEBHOOK_PORT", settings.ui_host, settings.webhook_port),
    ]
    if simulator and settings.sim_port:
        wanted.append(("WATTLINE_SIM_PORT", "127.0.0.1", settings.sim_port))
    seen: dict[int, str] = {}
    for variable, host, port in wanted:
        if port in seen:
            raise SettingsError(f"{variable}={port} is the port of {seen[port]} too: give each its own")
        seen[port] = variable
        try:
            # SO_REUSEADDR as the servers bind: a socket in TIME_WAIT is no conflict.
            socket.create_server((host, port)).close()
        except OSError as exc:
            raise SettingsError(
                f"{variable}={port}: {host}:{port} is not free ({os.strerror(exc.errno) if exc.errno else exc}); "
                f"stop what listens there or set {variable} to a free port"
            ) from None


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


LOG_FILES = {"webserver": "webserver.log", "daemon": "daemon.log", "receiver": "receiver.log"}


def log_dir(settings: WattlineSettings) -> Path:
    return Path(settings.home) / "logs"


def _spawn(name: str, command: list[str], logs: Path) -> subprocess.Popen:
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / LOG_FILES[name]).open("ab") as out:
        out.write(f"---- {time.strftime('%Y-%m-%d %H:%M:%S %z')} {' '.join(command)}\n".encode())
        out.flush()
        return subprocess.Popen(
            command, cwd=REPO_ROOT, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )


def start_dagster(settings: WattlineSettings) -> list[subprocess.Popen]:
    logs = log_dir(settings)
    return [_spawn("webserver", webserver_command(settings), logs), _spawn("daemon", daemon_command(), logs)]


def start_receiver(settings: WattlineSettings) -> subprocess.Popen:
    return _spawn("receiver", receiver_command(settings), log_dir(settings))


ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# Dagster's "… - ERROR - …", uvicorn's "ERROR:    …", Python's "Traceback"-less last line.
ERROR_LINE = re.compile(r"(^|\s-\s)(ERROR|CRITICAL)(\s-\s|:)")


class ErrorEcho:
    """Follows the children's log files and echoes their error lines to the terminal, a
    few a minute per child (an outage makes every daemon thread complain at once)."""

    PER_MINUTE = 5

    def __init__(self, logs: Path, print_=print):
        self._print = print_
        self._logs = logs
        # Only what this start writes: the files are appended to across restarts.
        self._offsets = {name: self._size(file) for name, file in LOG_FILES.items()}
        self._windows = {name: (0.0, 0, 0) for name in LOG_FILES}  # start, shown, held back
        self._last: dict[str, str] = {}

    def _size(self, file: str) -> int:
        try:
            return (self._logs / file).stat().st_size
        except FileNotFoundError:
            return 0

    def poll(self) -> None:
        for name, file in LOG_FILES.items():
            try:
                with (self._logs / file).open("rb") as stream:
                    stream.seek(self._offsets[name])
                    chunk = stream.read()
            except FileNotFoundError:
                continue
            complete = chunk.rfind(b"\n") + 1
            self._offsets[name] += complete
            for raw in chunk[:complete].decode(errors="replace").splitlines():
                line = ANSI.sub("", raw).strip()
                if ERROR_LINE.search(line):
                    self._echo(name, line)
        self._roll_windows()

    def _echo(self, name: str, line: str) -> None:
        # Dagster's handler and Python's last-resort one both write some records: once is enough.
        message = re.split(r"\s-\s(?:ERROR|CRITICAL)\s-\s|^(?:ERROR|CRITICAL):[\w.]+:", line)[-1].strip()
        if message == self._last.get(name):
            return
        self._last[name] = message
        start, shown, held = self._windows[name]
        now = time.monotonic()
        if now - start >= 60:
            self._flush(name)
            start, shown, held = now, 0, 0
        if shown < self.PER_MINUTE:
            self._print(f"{name}: {line[:300]}", file=sys.stderr)
            shown += 1
        else:
            held += 1
        self._windows[name] = (start, shown, held)

    def _roll_windows(self) -> None:
        now = time.monotonic()
        for name, (start, _, _) in self._windows.items():
            if now - start >= 60:
                self._flush(name)

    def _flush(self, name: str) -> None:
        start, shown, held = self._windows[name]
        if held:
            self._print(f"{name}: {held} more error lines in {self._logs / LOG_FILES[name]}", file=sys.stderr)
        self._windows[name] = (start, shown, 0)


class EmbeddedServerWatch:
    """Restarts the embedded PostgreSQL server when it dies (killed, out of memory),
    waiting longer after each failed attempt: after a SIGKILL the old server's backends
    hold its shared memory until they notice, and PostgreSQL refuses to start until then.
    Gives up after six failed attempts in a row (about a minute), and the platform stops."""

    BACKOFF_S = (1, 2, 4, 8, 16, 30)

    def __init__(self, home: Path, print_=print):
        self._home = home
        self._print = print_
        self._failures = 0
        self._next_try = 0.0

    def check(self) -> bool:
        """False when the server is down and every attempt to restart it failed."""
        from orchestration import embedded_postgres

        try:
            if embedded_postgres.running_url(self._home) is not None:
                return True
        except Exception:  # noqa: BLE001 - postmaster.pid caught mid-write: look again next time
            return True
        now = time.monotonic()
        if now < self._next_try:
            return True
        if self._failures >= len(self.BACKOFF_S):
            self._print(
                f"the embedded PostgreSQL server could not be restarted; see {embedded_postgres.pgdata_dir(self._home)}/log",
                file=sys.stderr,
            )
            return False
        self._print(f"the embedded PostgreSQL server is down; restarting it (attempt {self._failures + 1}/{len(self.BACKOFF_S)})", file=sys.stderr)
        try:
            server = embedded_postgres.start(self._home)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, and reported on the terminal
            delay = self.BACKOFF_S[self._failures]
            self._failures += 1
            self._next_try = now + delay
            reason = " ".join(str(exc).split())[:300]
            self._print(f"restarting the embedded PostgreSQL server failed ({reason}); next attempt in {delay} s", file=sys.stderr)
            return True
        self._failures = 0
        self._print(f"the embedded PostgreSQL server is back: {server.redacted_url}", file=sys.stderr)
        return True


def wait_for_ui(settings: WattlineSettings, processes: list[subprocess.Popen], logs: Path, timeout_s: float = 180) -> str:
    url = f"http://{settings.ui_host}:{settings.ui_port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError(f"the Dagster webserver, its daemon or the webhook receiver exited during start-up (see {logs})")
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
    manager's stop) or until one of them dies; returns an exit code. The embedded
    PostgreSQL server, when in use, is restarted if it dies."""
    # Both signals stop the platform, whatever this process inherited: a shell starts
    # background jobs with SIGINT ignored, and SIGTERM would otherwise end this process
    # alone and orphan the servers (they run in sessions of their own).
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    logs = log_dir(settings)
    _log_pgserver_to(logs)
    echo = ErrorEcho(logs, print_)
    database = None if settings.database_url else EmbeddedServerWatch(Path(settings.home), print_)
    processes = [*start_dagster(settings), start_receiver(settings)]
    try:
        url = wait_for_ui(settings, processes, logs)
        print_(f"Dagster UI: {url}   (Ctrl-C to stop)")
        print_(f"DR webhooks: http://{settings.ui_host}:{settings.webhook_port}/webhooks/utility/dr-notification")
        print_(f"logs: {logs} ({', '.join(LOG_FILES.values())})")
        while all(p.poll() is None for p in processes):
            echo.poll()
            if database is not None and not database.check():
                return 1
            time.sleep(1)
        echo.poll()
        print_(f"a Dagster process or the webhook receiver exited; stopping the platform (see {logs})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print_("stopping …")
        return 0
    except RuntimeError as exc:
        print_(str(exc), file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and orphan the servers.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop(processes)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _log_pgserver_to(logs: Path) -> None:
    """pgserver logs a failed start with the server's whole log: to a file, not the terminal."""
    logs.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("pgserver")
    if not logger.handlers:
        handler = logging.FileHandler(logs / "postgres-restarts.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
