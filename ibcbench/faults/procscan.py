"""What other local users see of the kit's processes: the command lines of a process and its
descendants, read from ``/proc`` while it runs.

Any user can read every process's ``/proc/<pid>/cmdline`` (``ps -eo args``), so a secret there is
a secret shared with the machine. :class:`CmdlineWatch` polls the tree below a root process (the
parent of each process from ``/proc/<pid>/stat``) and records every command line it saw, and the
ones that hold a secret.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


def parent_pids() -> dict[int, int]:
    """Every process's parent: pid -> ppid (from ``/proc/<pid>/stat``)."""
    out: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, as they are now."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_pids().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cmdline(pid: int) -> str | None:
    """The command line of ``pid``, its arguments joined by spaces (None: it is gone)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


@dataclass
class CmdlineWatch:
    """Polls the command lines of ``root`` and its descendants every ``every_s`` seconds while in
    its ``with`` block. ``seen``: each distinct command line; ``hits``: those holding a secret."""

    root: int
    secrets: Iterable[str]
    every_s: float = 0.005
    seen: set[str] = field(default_factory=set)
    hits: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.secrets = [s for s in self.secrets if s]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def scan(self) -> None:
        """One look at the tree now."""
        for pid in descendants(self.root):
            if pid == os.getpid():
                continue
            line = cmdline(pid)
            if not line or line in self.seen:
                continue
            self.seen.add(line)
            if any(secret in line for secret in self.secrets):
                self.hits.add(line)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(self.every_s)

    def ran(self, program: str) -> bool:
        """Whether a command line of ``program`` (its file name) was seen."""
        return any(Path(line.split(" ", 1)[0]).name == program for line in self.seen)

    def __enter__(self) -> CmdlineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
