"""The embedded PostgreSQL server: real PostgreSQL binaries from the `pgserver` wheel.

Used when `WATTLINE_DATABASE_URL` is unset. The data directory lives under
`WATTLINE_HOME/pgdata`; the server listens on a Unix socket only (no TCP port to
collide with or expose). Once started it keeps running for other processes (the
Dagster webserver, daemon, run workers, psql) until `wattline db stop`, like a server
started with `pg_ctl start`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from orchestration.database import Database

log = logging.getLogger(__name__)


def pgdata_dir(home: Path) -> Path:
    return home / "pgdata"


def start(home: Path) -> Database:
    """Start the embedded server, or reuse the one already running on this data directory."""
    import pgserver  # imported here: it touches the filesystem and user database on import

    home.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process, other processes share it.
    server = pgserver.get_server(pgdata_dir(home), cleanup_mode=None)
    if running_url(home) is None:
        # pgserver keeps one handle per data directory and process, and hands it back
        # without starting anything: after a stop in this process, start it ourselves.
        _wait_for_reaping(pgdata_dir(home))
        server.ensure_postgres_running()
        if running_url(home) is None:
            raise RuntimeError(f"the embedded PostgreSQL server did not start; see {pgdata_dir(home) / 'log'}")
    return Database(url=server.get_uri("postgres"), embedded=True)


def _wait_for_reaping(pgdata: Path, timeout_s: float = 10.0) -> None:
    """A killed postmaster stays a zombie until init reaps it, and meanwhile pgserver (and
    pg_ctl) take its pid for a running server and start nothing: wait for it to go."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = _postmaster(pgdata) if (pgdata / "PG_VERSION").exists() else None
        if info is None or info.process is None or not _is_zombie(info.process):
            return
        time.sleep(0.2)


def running_url(home: Path) -> str | None:
    """The URL of the server running on this data directory, or None when it is stopped."""
    pgdata = pgdata_dir(home)
    if not (pgdata / "PG_VERSION").exists():
        return None
    info = _postmaster(pgdata)
    if info is None or not info.is_running() or _is_zombie(info.process):
        return None
    return info.get_uri(database="postgres")


def _postmaster(pgdata: Path, timeout_s: float = 5.0):
    """pgserver's PostmasterInfo of the data directory, None without a postmaster.pid. A
    starting postmaster writes the file's lines in turn (its status line last), and
    pgserver fails on a file of fewer: such a file is read again until it is whole."""
    import time

    from pgserver.utils import PostmasterInfo

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return PostmasterInfo.read_from_pgdata(pgdata)
        except AssertionError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{pgdata / 'postmaster.pid'} stayed incomplete for {timeout_s:.0f} s") from None
            time.sleep(0.05)


def _is_zombie(process) -> bool:
    """A killed postmaster nobody reaped yet (its parent is init, or a container's first
    process that may never reap) still has its pid: it is no server."""
    import psutil

    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stop(home: Path) -> bool:
    """Stop the embedded server; False when it was not running."""
    from pgserver import pg_ctl

    if running_url(home) is None:
        return False
    # PostgreSQL refuses to run as root; pgserver runs it as a `pgserver` user then.
    user = "pgserver" if os.name == "posix" and os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata_dir(home), user=user)
    return True
