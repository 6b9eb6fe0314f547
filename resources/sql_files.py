"""Named SQL statements kept in .sql files beside the code that runs them."""

import functools
import re
from importlib import resources as package_files


@functools.cache
def statements(filename: str) -> dict[str, str]:
    """`-- name: x` sections of resources/<filename>, keyed by name."""
    text = package_files.files("resources").joinpath(filename).read_text()
    sections = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {name: body.strip() for name, body in zip(sections[1::2], sections[2::2], strict=True)}
