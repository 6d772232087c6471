"""PID files the kit reads before it trusts or signals the process they name.

A PID in ``postmaster.pid`` is this data directory's postmaster only when that process runs in the
data directory (a postmaster's working directory is its data directory) and started when the file
says (its third line, seconds since the epoch). Anything else is a stale file: the PID of a crashed
server, since given to another process (another cluster's postmaster, any process of the server
user). A PgBouncer pidfile's PID is PgBouncer when its command line holds the kit's ini path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: how far the file's start time may be from the process's (the postmaster writes the file a moment
#: after it starts; the boot time /proc gives is whole seconds)
START_TOLERANCE_S = 5.0


@dataclass(frozen=True)
class PidCheck:
    """What a PID file names. ``ours``: the live process it describes. ``stale``: the file exists and
    its PID is proven not to be that process (gone, or another process), so it may be removed.
    Neither: no file, or the process could not be inspected."""

    path: Path
    pid: int | None
    ours: bool
    stale: bool
    reason: str = ""


def _alive(pid: int) -> bool | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return None  # alive, not ours to inspect
    return True


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (None: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: fields count after it
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[19])  # field 22 of the whole line
    return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def process_has_argument(pid: int, argument: str) -> bool:
    """Whether ``pid``'s command line holds ``argument`` as one exact argument."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return argument.encode() in args


def check_postmaster_pid(data_dir: Path) -> PidCheck:
    """Whether ``data_dir/postmaster.pid`` names this data directory's live postmaster."""
    path = data_dir / "postmaster.pid"
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return PidCheck(path, None, False, False)
    try:
        pid = int(lines[0])
        started = float(lines[2])
    except (ValueError, IndexError):
        return PidCheck(path, None, False, True, "it is not a postmaster.pid the server wrote")
    alive = _alive(pid)
    if alive is False:
        return PidCheck(path, pid, False, True, f"no process has pid {pid}")
    cwd = _cwd(pid)
    if alive is None or cwd is None:
        return PidCheck(path, pid, False, False, f"process {pid} cannot be inspected")
    if cwd != os.path.realpath(data_dir):
        return PidCheck(path, pid, False, True, f"pid {pid} runs in {cwd}, not in {data_dir}")
    real_start = process_start_time(pid)
    if real_start is None or abs(real_start - started) > START_TOLERANCE_S:
        return PidCheck(path, pid, False, True, f"pid {pid} is not the process that wrote the file")
    return PidCheck(path, pid, True, False)


def check_pgbouncer_pid(pidfile: Path, ini: Path) -> PidCheck:
    """Whether ``pidfile`` names a live PgBouncer started with ``ini``."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except FileNotFoundError:
        return PidCheck(pidfile, None, False, False)
    except (ValueError, IndexError):
        return PidCheck(pidfile, None, False, True, "it holds no pid")
    alive = _alive(pid)
    if alive is False:
        return PidCheck(pidfile, pid, False, True, f"no process has pid {pid}")
    if not process_has_argument(pid, str(ini)):
        return PidCheck(pidfile, pid, False, alive is True, f"pid {pid} is not PgBouncer of {ini}")
    return PidCheck(pidfile, pid, True, False)


def remove_stale(check: PidCheck) -> bool:
    """Delete a PID file proven stale (``check.stale``); returns whether it did."""
    if not check.stale:
        return False
    check.path.unlink(missing_ok=True)
    return True
