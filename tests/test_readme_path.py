"""The README's main command as a newcomer runs it: `make demo`, exactly as written, in a
fresh clone, from the clone's root, with no `WATTLINE_*` variable set (the relative
default home `.wattline`), stopped with Ctrl-C once it serves, then run again on the
same warehouse. Both runs must plan their DR event and serve.

This is the path the authors' tests missed: every other test sets an absolute
WATTLINE_HOME and starts from a fresh warehouse. Here the dbt step moves the process's
working directory, the second run finds the first run's events and runs in the inbox,
and the embedded server is the one `.wattline/` holds.

The clone's `.venv` is made by the fixture, layered on this session's installed packages
(a .pth file) so that `make demo`'s own install step only installs the clone itself:
installing some hundred packages again would double the suite's time and test nothing
more than CI's own `make test` on its fresh clone does. Everything after that is the
user's: make, its install and manifest steps, `wattline demo` and Ctrl-C.

It runs in the background beside the rest of the suite (conftest starts it once the
session has collected this module), as the soak does: mostly waiting on its own server.
"""

from __future__ import annotations

import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVING = "Dagster UI: http://"
# Days of history the demo backfills by default and needs to forecast (the README's default).
RUN_TIMEOUT_S = 1500


@dataclass
class DemoRun:
    exit_code: int | None
    output: str
    seconds: float

    @property
    def stopped_cleanly(self) -> bool:
        """What the user sees after Ctrl-C: make, interrupted too, dies by SIGINT (its
        `*** [demo] Interrupt`), while wattline stops the platform and exits 0. A failed
        demo makes make say `Error N` instead."""
        if self.exit_code == 0:
            return True
        return (
            self.exit_code == -signal.SIGINT and "stopping …" in self.output
            and not any(line.startswith("make: ***") and "Error" in line for line in self.output.splitlines())
        )


@dataclass
class ReadmePath:
    clone: Path
    runs: list[DemoRun] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    process: subprocess.Popen | None = None
    # Set by an interrupted session: no run starts after it, a run in progress is stopped.
    stop_requested: bool = False


def user_environment(clone: Path) -> dict[str, str]:
    """The environment of a newcomer's shell: no WATTLINE_* (nor the tests' own
    variables), no DAGSTER_HOME, no activated venv; only the clone's venv is on PATH once
    make puts it there."""
    drop = ("WATTLINE_", "DAGSTER_", "VIRTUAL_ENV", "PYTHONPATH", "PYTEST_", "HYPOTHESIS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    # This session's venv must not stand in for the clone's.
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix))
    return env


def make_clone(root: Path) -> Path:
    """A clone of this checkout's committed and working-tree state (what CI tests), with
    a `.venv` whose interpreter sees this session's packages but not this checkout."""
    clone = root / "wattline"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True)
    # The working tree too: a developer runs the suite before committing.
    changed = subprocess.run(
        ["git", "ls-files", "--modified", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()
    for name in changed:
        source = REPO / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    for name in subprocess.run(["git", "ls-files", "--deleted"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split():
        (clone / name).unlink(missing_ok=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(clone / ".venv")], check=True)
    clone_site = Path(subprocess.run(
        [str(clone / ".venv/bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip())
    ours = sysconfig.get_paths()["purelib"]
    # Our packages, after the clone's own: the clone's editable install of itself wins, and
    # our editable finder (a .pth that points at this checkout) is not processed there.
    (clone_site / "zz-wattline-test-packages.pth").write_text(f"{ours}\n")
    # Console scripts the platform starts as processes (dbt, dagster-webserver, ...),
    # re-pointed at the clone's interpreter, as pip would have written them.
    for script in Path(sys.prefix, "bin").iterdir():
        target = clone / ".venv/bin" / script.name
        if target.exists() or not script.is_file():
            continue
        try:
            text = script.read_text()
        except UnicodeDecodeError:
            continue
        first, _, rest = text.partition("\n")
        if first.startswith("#!") and first.endswith("/python") and first[2:].startswith(sys.prefix):
            target.write_text(f"#!{clone / '.venv/bin/python'}\n{rest}")
            target.chmod(0o755)
    assert site  # the .pth mechanism above is site's
    return clone


def run_make_demo(state: ReadmePath, log: Path) -> DemoRun:
    """`make demo` in the clone; Ctrl-C (SIGINT to its process group, as a terminal does)
    once it serves; the output and exit code."""
    started = time.monotonic()
    with log.open("w") as out:
        state.process = process = subprocess.Popen(
            ["make", "demo"], cwd=state.clone, env=user_environment(state.clone), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    deadline = started + RUN_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        if state.stop_requested or SERVING in log.read_text(errors="replace"):
            os.killpg(process.pid, signal.SIGINT)
            break
        time.sleep(0.5)
    try:
        code = process.wait(timeout=max(60.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        code = process.wait()
    return DemoRun(exit_code=code, output=log.read_text(errors="replace"), seconds=time.monotonic() - started)


def walk_the_readme_path(state: ReadmePath) -> None:
    try:
        for n in (1, 2):
            if state.stop_requested:
                break
            state.runs.append(run_make_demo(state, state.clone.parent / f"make-demo-{n}.log"))
            if not state.runs[-1].stopped_cleanly:
                break
        state.events = inbox(state.clone)
    except Exception as exc:  # noqa: BLE001 - reported by the tests, with the logs
        state.error = repr(exc)
    finally:
        stop_server(state.clone)


def inbox(clone: Path) -> list[tuple[str, str]]:
    """(event id, status) of every DR event in the clone's warehouse, read as a user would
    with the clone's own code, from the server `.wattline` holds."""
    script = (
        "from pathlib import Path\nimport sqlalchemy as sa\n"
        "from orchestration import embedded_postgres\n"
        "from orchestration.database import Database\n"
        "url = embedded_postgres.running_url(Path('.wattline').resolve())\n"
        "engine = sa.create_engine(Database(url=url).with_name('wattline').sqlalchemy_url)\n"
        "with engine.connect() as conn:\n"
        "    for row in conn.execute(sa.text('select event_id, status from ops.dr_events order by inbox_id')):\n"
        "        print(row.event_id, row.status)\n"
    )
    out = subprocess.run(
        [str(clone / ".venv/bin/python"), "-c", script], cwd=clone, env=user_environment(clone),
        capture_output=True, text=True, timeout=120, check=True,
    )
    return [tuple(line.split()) for line in out.stdout.splitlines()]


def stop_server(clone: Path) -> None:
    for home in (clone / ".wattline", clone / "dbt_project/.wattline"):
        if (home / "pgdata").exists():
            subprocess.run(
                [str(clone / ".venv/bin/python"), "-c", f"from orchestration import embedded_postgres; embedded_postgres.stop({str(home)!r})"],
                cwd=clone, env=user_environment(clone), capture_output=True, timeout=120, check=False,
            )


def start_readme_path():
    """Clone and start both runs in a background thread; returns (thread, state)."""
    import threading

    root = Path(tempfile.mkdtemp(prefix="wattline-readme-"))
    state = ReadmePath(clone=make_clone(root))
    thread = threading.Thread(target=walk_the_readme_path, args=(state,), daemon=True, name="readme-path")
    thread.start()
    return thread, state


def stop_readme_path(thread, state: ReadmePath) -> None:
    """An interrupted session ends the demo (Ctrl-C, as its user would) and its server."""
    state.stop_requested = True
    if state.process is not None and state.process.poll() is None:
        os.killpg(state.process.pid, signal.SIGINT)
        try:
            state.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(state.process.pid, signal.SIGKILL)
    thread.join(timeout=180)
    stop_server(state.clone)


README_KEY = pytest.StashKey[tuple]()
# The first test waits for both runs in its fixture, longer than pytest's 600 s per test.
pytestmark = pytest.mark.timeout(2 * RUN_TIMEOUT_S + 300 + 300)


@pytest.fixture(scope="module")
def readme_path(request):
    thread, state = request.config.stash.get(README_KEY, None) or start_readme_path()
    thread.join(timeout=2 * RUN_TIMEOUT_S + 300)
    assert not thread.is_alive(), "make demo did not finish"
    yield state
    shutil.rmtree(state.clone.parent, ignore_errors=True)


def explain(state: ReadmePath) -> str:
    return "\n\n".join(f"run {n} ({run.seconds:.0f} s, exit {run.exit_code}):\n{run.output[-6000:]}" for n, run in enumerate(state.runs, 1))


@pytest.mark.e2e
def test_make_demo_twice_in_a_fresh_clone_plans_and_serves(readme_path):
    assert readme_path.error is None, readme_path.error + explain(readme_path)
    assert len(readme_path.runs) == 2, explain(readme_path)
    for run in readme_path.runs:
        assert run.stopped_cleanly, explain(readme_path)
        assert "[9/9]" in run.output and SERVING in run.output, explain(readme_path)
        assert "DR event DEMO-" in run.output and "planned" in run.output, explain(readme_path)
    # One warehouse for both: each run's event is in its inbox, planned (or refused a plan,
    # with the reason the demo printed), and nothing else is.
    assert len(readme_path.events) == 2, readme_path.events
    assert all(event.startswith("DEMO-") and status in ("planned", "failed") for event, status in readme_path.events)


@pytest.mark.e2e
def test_the_demo_keeps_one_server_under_the_clone_root(readme_path):
    """The relative default home is the clone root's `.wattline`, whatever directory
    dbt moved the process into: no second server under dbt_project/."""
    clone = readme_path.clone
    assert (clone / ".wattline/pgdata").is_dir(), explain(readme_path)
    assert not (clone / "dbt_project/.wattline").exists(), explain(readme_path)
    assert str(clone / ".wattline") in readme_path.runs[0].output
