"""What a simulator instance simulates."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from simulator.faults import Fault
from simulator.modes import ModeWindow


@dataclass(frozen=True)
class SimulatorConfig:
    """The simulated world. Everything it serves is a pure function of these values and
    the requested time, so an overlapping re-fetch returns identical data.

    seed: the world; facilities: fleet size; interval_s: meter reading interval (must
    divide an hour); bad_row_rate: share of readings corrupted (0 = clean); now: clock
    override; modes: peak/outage windows set from the start (more can be POSTed).
    """

    seed: int = 42
    facilities: int = 10
    interval_s: int = 60
    bad_row_rate: float = 0.0
    now: Callable[[], datetime] | None = None
    modes: tuple[ModeWindow, ...] = ()
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if self.facilities < 1:
            raise ValueError("facilities must be at least 1")
        if not 1 <= self.interval_s <= 3600 or 3600 % self.interval_s:
            raise ValueError("interval_s must divide an hour (1–3600 s)")
        if not 0.0 <= self.bad_row_rate <= 1.0:
            raise ValueError("bad_row_rate must be within [0, 1]")

    def current_time(self) -> datetime:
        """The simulator's clock: `now()` if given (tests), else the real UTC time."""
        current = self.now() if self.now is not None else datetime.now(UTC)
        return current.replace(tzinfo=UTC) if current.tzinfo is None else current.astimezone(UTC)
