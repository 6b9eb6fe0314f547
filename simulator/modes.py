"""Operating modes per facility and time window: normal, peak or outage.

Peak scales the facility's load by PEAK_FACTOR; an outage means its meters report
nothing at all (the head-end has no data), not zeros. Where windows overlap, the one
set last wins, so a later `normal` window ends an earlier peak or outage early.
"""

import threading
from dataclasses import dataclass
from datetime import datetime

MODES = ("normal", "peak", "outage")
PEAK_FACTOR = 1.35


@dataclass(frozen=True)
class ModeWindow:
    facility_id: str
    mode: str  # normal | peak | outage
    start: datetime  # inclusive, timezone-aware
    end: datetime  # exclusive

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("mode window start and end must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("mode window end must be after its start")


@dataclass(frozen=True)
class LoadShift:
    """A building-management command in effect: `kw` off the facility's `end_use` load
    over [start, end) (negative: added, as pre-cooling or a rebound). `end_use` battery
    discharges the on-site battery instead, lowering grid import, never below zero."""

    facility_id: str
    end_use: str
    start: datetime
    end: datetime
    kw: float


class ModeBook:
    """The windows set so far, safe to read and extend from several request threads."""

    def __init__(self, windows=()):
        self._windows = list(windows)
        self._lock = threading.Lock()

    def add(self, window: ModeWindow) -> None:
        with self._lock:
            self._windows.append(window)

    def snapshot(self) -> list[ModeWindow]:
        """The windows in the order they were set (a copy: a request sees one state)."""
        with self._lock:
            return list(self._windows)
