"""Checks on what a caller passes: names that become files or SQL identifiers, paths joined onto a
folder, chunk intervals, and sizes with an upper bound.

Every check is a whitelist matched against the whole value (``re.fullmatch``: a trailing newline is
not a letter), and a refusal is one :class:`~ibcbench.errors.ConfigError` line that says what to give
instead. A light module: nothing but the standard library and :mod:`ibcbench.errors`.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

from ibcbench.errors import ConfigError

#: a name that may become a file name or an identifier: a letter or digit, then letters, digits,
#: ``.``, ``_`` or ``-``
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")
#: a server setting's name (``random_page_cost``, ``timescaledb.enable_chunk_skipping``)
SETTING_RE = re.compile(r"[a-z_][a-z0-9_.]{0,62}")
#: a TimescaleDB chunk interval the kit accepts: a count and a unit, e.g. ``1 hour``, ``7 days``
CHUNK_INTERVAL_RE = re.compile(r"[1-9][0-9]{0,4} (minutes?|hours?|days?|weeks?)")
#: the seed range numpy's generators accept from the notebooks (``np.random.default_rng`` and friends)
MAX_SEED = 2**32 - 1


def check_name(name: object, what: str = "name") -> str:
    """``name`` when it is a safe file name and identifier part, else a :class:`ConfigError`."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{what} {name!r} is invalid: use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit, at most 121 characters)"
        )
    return name


def check_chunk_interval(interval: object) -> str:
    """``interval`` when it reads as ``N minutes|hours|days|weeks``, else a :class:`ConfigError`."""
    if not isinstance(interval, str) or not CHUNK_INTERVAL_RE.fullmatch(interval):
        raise ConfigError(
            f"chunk interval {interval!r} is invalid: give a count and a unit, such as "
            "'1 hour', '30 minutes', '1 day' or '2 weeks'"
        )
    return interval


def interval_name(interval: str) -> str:
    """The identifier part for a checked chunk interval: ``1 hour`` -> ``1_hour``."""
    return check_chunk_interval(interval).replace(" ", "_")


def safe_child(folder: str | os.PathLike[str], *parts: str) -> Path:
    """``folder / parts...``, refused unless it stays inside ``folder``: no absolute part, no ``..``,
    no symlink (already there) that leads out. Returns the resolved path."""
    base = Path(folder).resolve()
    for part in parts:
        if not isinstance(part, str) or not part or "\x00" in part:
            raise ConfigError(f"path part {part!r} under {base} is invalid: give a plain name")
        piece = Path(part)
        if piece.is_absolute() or ".." in piece.parts:
            raise ConfigError(
                f"path {part!r} would leave {base}: give a name inside it (no '..', not absolute)"
            )
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise ConfigError(
            f"path {'/'.join(parts)!r} leads out of {base} (through a symlink): remove the link "
            "or give another name"
        )
    return target


def check_count(value: object, what: str, *, maximum: int, minimum: int = 1) -> int:
    """A whole number from ``minimum`` to ``maximum``, else a :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be a whole number, not {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{what} must be from {minimum} to {maximum}, not {value}")
    return value


def check_seconds(value: object, what: str, *, maximum: float) -> float:
    """A finite number of seconds above 0 and at most ``maximum``, else a :class:`ConfigError`."""
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or not 0 < number <= maximum:
        raise ConfigError(
            f"{what} must be a number of seconds above 0 and at most {maximum:g}, not {value!r}"
        )
    return float(number)


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check_room(
    what: str, *, disk_bytes: int = 0, folder: Path | None = None, memory_bytes: int = 0
) -> None:
    """Refuse, before any work, ``what`` when it needs more disk at ``folder`` (its nearest existing
    parent) or more memory than there is: one line naming the need and what is free."""
    if folder is not None and disk_bytes:
        probe = Path(folder).resolve()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        if disk_bytes > free:
            raise ConfigError(
                f"no space left on {folder}: {what} needs about {_gb(disk_bytes)} and its disk "
                f"({probe}) has {_gb(free)} free; generate fewer packets (--packets), free space "
                "or choose another --out"
            )
    available = available_memory_bytes()
    if memory_bytes and available is not None and memory_bytes > available:
        raise ConfigError(
            f"{what} needs about {_gb(memory_bytes)} of memory, {_gb(available)} is available: "
            "spread the packets over more days (--days) or generate fewer (--packets)"
        )
