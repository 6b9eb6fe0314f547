"""What a parser returns: the rows it could read, and the points it could not, with why."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Parsed:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, raw: Any, reason: str) -> None:
        self.rejected.append({"raw": raw, "reason": reason})


def parse_utc(value: str) -> datetime:
    """An ISO 8601 timestamp with Z or an offset (a naive one is read as UTC), in UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
