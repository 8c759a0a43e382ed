"""Where a command's time went before its flow ran: one line at its end.

`crucible <stage>` (and `run`, `sweep`, `resume`) prints, on stderr, e.g.

    start-up 9.8 s: imports 2.1 s, checks 0.3 s, Ray 5.9 s (started a local instance,
    2 CPUs), Prefect 3.6 s (started a server on 127.0.0.1:4200, alongside Ray); curate 5.2 s;
    shutdown 1.5 s

(one line). "start-up" is the wall time from the process's start (the interpreter's own
start-up included) to the moment the flow began; its parts are measured where they happen.
Parts that overlap (a Prefect server starting while Ray starts) each show their own time,
and say so.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


def _process_age() -> float:
    """Seconds since this process started (Linux: /proc), or 0 where that is not known."""
    try:
        with open("/proc/self/stat") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class Clock:
    """Wall-time parts of one command: each `part` adds to its name, with a note of what it did."""

    start: float = field(default_factory=lambda: time.monotonic() - _process_age())
    parts: dict[str, float] = field(default_factory=dict)  # name -> its own seconds
    walls: dict[str, float] = field(default_factory=dict)  # name -> the seconds it added to the wall
    notes: dict[str, str] = field(default_factory=dict)
    checks_from: float | None = None  # when the command's checks began (counted until the runtime starts)
    flow_began: float | None = None
    flow_s: float | None = None
    flow_note: str | None = None
    shutdown_s: float | None = None

    def add(self, name: str, seconds: float, note: str | None = None, wall: float | None = None) -> None:
        """`wall`: what the part added to the command's wall time, where it ran alongside another."""
        self.parts[name] = self.parts.get(name, 0.0) + seconds
        self.walls[name] = self.walls.get(name, 0.0) + (seconds if wall is None else wall)
        if note:
            self.notes[name] = note

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - began)

    def end_checks(self) -> None:
        if self.checks_from is not None:
            self.add("checks", time.monotonic() - self.checks_from)
            self.checks_from = None

    def note(self, name: str, text: str) -> None:
        self.notes[name] = text

    @contextlib.contextmanager
    def flow(self) -> Iterator[None]:
        self.flow_began = time.monotonic()
        try:
            yield
        finally:
            self.flow_s = time.monotonic() - self.flow_began

    @contextlib.contextmanager
    def shutdown(self) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.shutdown_s = (self.shutdown_s or 0.0) + time.monotonic() - began

    def line(self, command: str) -> str:
        """The one line: start-up and its parts, the flow's time, the shutdown's."""
        end = self.flow_began if self.flow_began is not None else time.monotonic()
        total = end - self.start
        shown = []
        for name, seconds in self.parts.items():
            if seconds < 0.05 and name not in ("Prefect", "Ray"):
                continue
            note = self.notes.get(name)
            shown.append(f"{name} {seconds:.1f} s" + (f" ({note})" if note else ""))
        other = total - sum(self.walls.values())  # a part that ran alongside another adds only its own wait
        if other >= 0.05:
            shown.append(f"other {other:.1f} s")
        out = f"start-up {total:.1f} s: " + ", ".join(shown)
        if self.flow_s is not None:
            out += f"; {command} {self.flow_s:.1f} s" + (f" ({self.flow_note})" if self.flow_note else "")
        if self.shutdown_s is not None:
            out += f"; shutdown {self.shutdown_s:.1f} s"
        return out


_current: list[Clock] = []  # the clock of the command running now, once begun


def begin(from_process_start: bool) -> Clock:
    """The clock of the command starting now: from the process's start when the command is
    the process (the `crucible` executable), else from now (main() called in a process that
    was already running)."""
    _current[:] = [Clock() if from_process_start else Clock(start=time.monotonic())]
    return _current[0]


def take() -> Clock:
    """The clock `begin` made (once: a later call gets a new one), or one from now when no
    command began one."""
    return _current.pop() if _current else Clock(start=time.monotonic())
