"""What the tool prints: steps, warnings and byte progress with sizes and times."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


def human(n: float) -> str:
    """Bytes as a short human size (``1.4 GB``)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@dataclass
class Console:
    """Prints to ``err`` (progress, notes) and ``out`` (results) of the CLI."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    quiet: bool = False

    def step(self, text: str) -> None:
        """A line saying what happens next."""
        if not self.quiet:
            print(f"==> {text}", file=self.err, flush=True)

    def note(self, text: str) -> None:
        """A warning the user should read; never silenced."""
        print(f"warning: {text}", file=self.err, flush=True)

    def line(self, text: str) -> None:
        """One line of a subprocess's output (BuildKit's progress)."""
        if not self.quiet:
            print(text, file=self.err, flush=True)

    def result(self, text: str) -> None:
        """The command's result, on standard output."""
        print(text, file=self.out, flush=True)

    def progress(self, label: str, total: int) -> Progress:
        """A byte progress meter for ``total`` bytes (0 when unknown)."""
        return Progress(self, label, total)


@dataclass
class Progress:
    """Counts bytes and redraws at most 4 times a second, then prints a summary."""

    console: Console
    label: str
    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    _drawn: float = 0.0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._drawn >= 0.25 and self.console.err.isatty() and not self.console.quiet:
            self._drawn = now
            pct = f" {100 * self.done // self.total:3d}%" if self.total else ""
            print(f"\r    {self.label}{pct} {human(self.done)}", end="", file=self.console.err, flush=True)

    def finish(self) -> float:
        """Print the summary line; returns the seconds taken."""
        took = time.monotonic() - self.started
        if not self.console.quiet:
            end = "\r" if self.console.err.isatty() else ""
            rate = human(self.done / took) if took > 0 else "-"
            print(f"{end}    {self.label}: {human(self.done)} in {took:.1f} s ({rate}/s)",
                  file=self.console.err, flush=True)
        return took
