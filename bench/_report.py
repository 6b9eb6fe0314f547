"""How every benchmark reports: a readable table on stdout, the same figures as JSON."""

import json
from pathlib import Path


def report(rows: list[tuple[str, str]], figures: dict, json_path: Path | None, heading: tuple[str, str] = ("measure", "value")) -> None:
    """Print `rows` (label, formatted value) as a table; write `figures` to json_path if given."""
    width = max(len(label) for label, _ in [heading, *rows]) + 4
    print(f"{heading[0]:<{width}}{heading[1]:>14}")
    for label, value in rows:
        print(f"{label:<{width}}{value:>14}")
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=2))
