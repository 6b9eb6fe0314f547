"""Step-by-step progress lines for long CLI commands (readable in a terminal and in CI logs)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator


class Steps:
    """Prints `[i/n] what … done (1.2 s)` around each step of a long command."""

    def __init__(self, total: int, stream=sys.stdout):
        self.total = total
        self.index = 0
        self.stream = stream

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.index += 1
        self.print(f"[{self.index}/{self.total}] {title} …")
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self.print(f"      failed after {time.monotonic() - started:.1f} s")
            raise
        self.print(f"      done in {time.monotonic() - started:.1f} s")

    def detail(self, text: str) -> None:
        self.print(f"      {text}")

    def print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
