"""What the soak does to a running platform: faults in the simulated feeds, a database
restart, a run worker killed mid-load, and bursts of signed and of hostile DR webhooks.
Each injector returns what it did, for the audit to hold the platform to."""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from simulator.utility import DR_NOTIFICATION_PATH, DrCall, signed_request

# Replayed deliveries carry a signature this much older than the receiver's 5-minute tolerance.
REPLAY_AGE = timedelta(minutes=10)


def faults_within_budget(read_timeout_s: float) -> list[dict]:
    """The feed faults set before the platform starts, each in the simulator's
    /v1/sim/faults form: every run they hit must survive them within its retries."""
    return [
        {"path_prefix": "/v1/readings", "kind": "error", "count": 2, "status": 503},
        {"path_prefix": "/v1/readings", "kind": "rate_limit", "count": 1, "retry_after_s": 2},
        {"path_prefix": "/v1/readings", "kind": "truncate", "count": 1, "keep_fraction": 0.4},
        {"path_prefix": "/v1/readings", "kind": "slow", "count": 1, "delay_s": read_timeout_s + 5},
        {"path_prefix": "/v3/", "kind": "error", "count": 2, "status": 500},
        {"path_prefix": "/api", "kind": "rate_limit", "count": 2, "retry_after_s": 2},
        {"path_prefix": "/v1/forecast", "kind": "slow", "count": 1, "delay_s": read_timeout_s + 5},
        {"path_prefix": "/v1/forecast", "kind": "truncate", "count": 1},
    ]


def fault_past_budget(retries: int) -> dict:
    """503s on readings for one more request than the retries allow: that run fails, and
    a run retry must load the hour whole."""
    return {"path_prefix": "/v1/readings", "kind": "error", "count": retries + 1, "status": 503}


# A readings body that stalls halfway for a few seconds, less than the read timeout.
STALL = {"path_prefix": "/v1/readings", "kind": "slow", "count": 1, "delay_s": 6, "keep_fraction": 0.5}


def set_faults(simulator_url: str, faults: list[dict]) -> None:
    for fault in faults:
        answer = requests.post(f"{simulator_url}/v1/sim/faults", json=fault, timeout=10)
        if answer.status_code != 201:
            raise SystemExit(f"the simulator refused fault {fault}: {answer.status_code} {answer.text}")


def fault_hits(simulator_url: str) -> list[dict]:
    return requests.get(f"{simulator_url}/v1/sim/faults", timeout=10).json()


def restart_postgres(home: Path) -> float:
    """Stop the embedded server (fast shutdown: every session is cut) and start it again;
    the seconds it was down."""
    from orchestration import embedded_postgres

    began = time.monotonic()
    embedded_postgres.stop(home)
    time.sleep(2)  # long enough that every client sees the server gone
    embedded_postgres.start(home)
    return time.monotonic() - began


def kill_run_worker(instance, run_id: str, timeout_s: float = 600) -> dict:
    """SIGKILL a run's worker process and its children once its first step has started, as
    an out-of-memory kill of the pod would; returns what was killed. On a busy machine the
    run may wait minutes in the queue behind the automation's runs before its step starts."""
    from dagster import DagsterEventType

    deadline = time.monotonic() + timeout_s
    pid = None
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return {"run_id": run_id, "killed": False, "reason": f"the run ended ({run.status.value}) before its step started (worker pid {pid})"}
        events = instance.all_logs(run_id, of_type={DagsterEventType.ENGINE_EVENT, DagsterEventType.STEP_START})
        pid = next((_pid_of(e) for e in events if _pid_of(e) is not None), pid)
        if pid is not None and any(e.dagster_event.event_type == DagsterEventType.STEP_START for e in events):
            break
        time.sleep(0.2)
    else:
        return {"run_id": run_id, "killed": False, "reason": f"no step started in time (worker pid {pid})"}
    time.sleep(2.5)  # the step's resources are up and its COPY is under way (and stalled: STALL)
    victims = [pid, *_descendants(pid)]
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return {"run_id": run_id, "killed": True, "pids": victims}


def _pid_of(event) -> int | None:
    """The run worker's pid, from the engine event its code server reports on launch."""
    data = event.dagster_event.event_specific_data if event.dagster_event else None
    pid = getattr(data, "metadata", {}).get("pid") if data is not None else None
    return int(pid.value) if pid is not None else None


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


@dataclass
class WebhookLedger:
    """What was sent to the receiver and what it answered."""

    valid_bodies: dict[str, list[dict]] = field(default_factory=dict)  # event id → distinct bodies sent
    deliveries: int = 0
    redeliveries: int = 0
    revisions: int = 0
    answers: Counter = field(default_factory=Counter)
    hostile_ids: set[str] = field(default_factory=set)
    hostile_answers: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)

    @property
    def events_valid(self) -> int:
        """Distinct valid event versions sent: each distinct body of an event is one."""
        return sum(len(bodies) for bodies in self.valid_bodies.values())


def dr_burst(receiver: str, secret: str, facility_ids: list[str], count: int, seed: int, ledger: WebhookLedger, workers: int = 8) -> None:
    """`count` signed deliveries as fast as `workers` connections send them: 70 % new
    events, 15 % redeliveries of one already sent (same body, a new delivery id, as a
    utility retrying), 15 % revisions (same event id, another target: a new version).
    Every one must be answered 202."""
    rng = random.Random(seed)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    run_tag = secrets.token_hex(3)
    sends: list[dict] = []
    sent: list[dict] = []
    for index in range(count):
        roll = rng.random()
        if sent and roll < 0.15:
            sends.append(rng.choice(sent))
            ledger.redeliveries += 1
            continue
        if sent and roll < 0.30:
            original = rng.choice(sent)
            body = {**original, "target_reduction_percentage": round(original["target_reduction_percentage"] + rng.uniform(1, 5), 1)}
            ledger.revisions += 1
        else:
            start = tomorrow + timedelta(minutes=15 * rng.randrange(0, 40))
            body = DrCall(
                f"SOAK-{run_tag}-{index:05d}", rng.sample(facility_ids, min(len(facility_ids), rng.randint(1, 3))),
                start, start + timedelta(minutes=15 * rng.randint(2, 8)), reduction_pct=round(rng.uniform(5, 20), 1),
            ).body()
        sent.append(body)
        sends.append(body)
        bodies = ledger.valid_bodies.setdefault(body["event_id"], [])
        if body not in bodies:
            bodies.append(body)

    def post(body: dict) -> None:
        raw, headers = signed_request(secret, body)
        began = time.perf_counter()
        try:
            answer = session.post(f"{receiver}{DR_NOTIFICATION_PATH}", data=raw, headers=headers, timeout=30)
        except requests.RequestException as error:
            ledger.answers["error"] += 1
            ledger.unexpected.append(f"{body['event_id']}: {type(error).__name__}")
            return
        ledger.ack_ms.append((time.perf_counter() - began) * 1000)
        ledger.answers[answer.status_code] += 1
        if answer.status_code != 202:
            ledger.unexpected.append(f"{body['event_id']}: {answer.status_code} {answer.text[:200]}")

    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=workers))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(post, sends))
    ledger.deliveries += len(sends)


def hostile_burst(receiver: str, secret: str, facility_ids: list[str], count: int, ledger: WebhookLedger) -> None:
    """`count` requests that must each be refused with 401 and store nothing: forged
    (signed with another secret), unsigned, replayed (a genuine signature older than the
    tolerance) and tampered (a genuine signature over another body), in turn. Each
    carries an event id no valid delivery uses, so anything stored is visible."""
    other = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    session = requests.Session()
    for index in range(count):
        event_id = f"SOAK-HOSTILE-{secrets.token_hex(4)}-{index:03d}"
        ledger.hostile_ids.add(event_id)
        body = DrCall(event_id, facility_ids[:1], start, start + timedelta(hours=1), reduction_pct=10).body()
        kind = ("forged", "unsigned", "replayed", "tampered")[index % 4]
        if kind == "forged":
            raw, headers = signed_request(other, body)
        elif kind == "unsigned":
            raw, headers = json.dumps(body).encode(), {"content-type": "application/json"}
        elif kind == "replayed":
            raw, headers = signed_request(secret, body, at=datetime.now(UTC) - REPLAY_AGE)
        else:
            _, headers = signed_request(secret, body)
            raw = json.dumps({**body, "target_reduction_percentage": 90}).encode()
        answer = session.post(f"{receiver}{DR_NOTIFICATION_PATH}", data=raw, headers=headers, timeout=30)
        ledger.hostile_answers[f"{kind} {answer.status_code}"] += 1
        if answer.status_code != 401:
            ledger.unexpected.append(f"{kind} {event_id}: {answer.status_code} {answer.text[:200]}")
