"""SIGTERM and SIGINT end every `wattline` command promptly, and close its runs.

SIGTERM (a service manager's stop, `kill`) is a Ctrl-C: KeyboardInterrupt in the main
thread. While a run executes in this process Dagster holds both signals itself and stops
the run at its next checkpoint; its execution may still never unwind (a dagster-dbt
row-count thread waiting on a table the interrupted dbt build holds, which the executor
waits for), and the run stays STARTED with nobody executing it. So a watcher, told of
every signal through Python's wakeup fd whatever handler Dagster installed, marks the
runs in flight CANCELING (their execution ends them CANCELED), passes the interrupt on
to this process's children (dbt) as a terminal's Ctrl-C would, and if the command has
not ended `grace_s` later, marks the runs CANCELED and exits.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading

import psutil

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_terminal: int | None = None


def install(grace_s: float = 20.0) -> None:
    """Call once, from the main thread, before any run starts."""
    global _terminal
    if _terminal is not None or threading.current_thread() is not threading.main_thread():
        return
    try:
        # The terminal as it is now: while a step runs, Dagster captures fd 2 into its compute log.
        _terminal = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # no real stderr (click's test runner)
        _terminal = os.dup(2)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(reader, writer, grace_s), name="wattline-interrupts", daemon=True).start()


def _watch(reader: socket.socket, writer: socket.socket, grace_s: float) -> None:
    from orchestration.runs import close_runs_in_flight, runs_in_flight

    deadline_armed = False
    while True:
        data = reader.recv(64)
        signums = [s for s in data if s in STOP_SIGNALS]
        if not signums or not runs_in_flight():
            continue
        name = signal.Signals(signums[-1]).name
        if not deadline_armed:
            deadline_armed = True
            _try(close_runs_in_flight, f"`wattline` received {name}", canceling=True)
            _interrupt_children()
            # A daemon: a command that ends by itself must not wait for it.
            timer = threading.Timer(grace_s, _give_up, args=(name, grace_s, signums[-1]))
            timer.daemon = True
            timer.start()
        else:
            # A second signal: stop waiting.
            _give_up(name, 0, signums[-1])


def _give_up(name: str, waited_s: float, signum: int) -> None:
    from orchestration.runs import close_runs_in_flight

    marked = _try(close_runs_in_flight, f"`wattline` received {name} and its run did not stop within {waited_s:.0f} s", canceling=False)
    for child in psutil.Process().children(recursive=True):
        _try(child.kill)
    line = f"interrupted ({name}); run {', '.join(marked or []) or '-'} did not stop within {waited_s:.0f} s: marked canceled\n"
    _try(os.write, _terminal if _terminal is not None else 2, line.encode())
    os._exit(128 + signum)


def _interrupt_children() -> None:
    for child in psutil.Process().children(recursive=False):
        _try(child.send_signal, signal.SIGINT)


def _try(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - best effort on the way out; the database may be gone too
        return None
