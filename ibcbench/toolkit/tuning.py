"""PostgreSQL settings recommended for a machine, by the seed's rules of thumb.

Rules (RAM in the machine, expected connections, storage kind):
- shared_buffers = 25% of RAM; effective_cache_size = 75% of RAM;
- maintenance_work_mem = RAM / 16, at most 2 GB;
- work_mem = (RAM - shared_buffers) / (max_connections * 3), at least 4 MB;
- random_page_cost 1.1 on SSD/NVMe, 4 on HDD, 1.5 on network storage;
  effective_io_concurrency 200 on SSD/NVMe, 2 on HDD, 100 on network storage;
- wal_buffers 16 MB; checkpoint_completion_target 0.9; max_wal_size 4 GB on SSD (2 GB on HDD);
  min_wal_size 1 GB; default_statistics_target 100;
- max_worker_processes = cores + timescaledb and pg_cron workers; max_parallel_workers = cores;
  max_parallel_workers_per_gather = cores / 2.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import psycopg

from ibcbench.errors import ConfigError

STORAGE = ("ssd", "nvme", "hdd", "network")


def _mb(value: float) -> str:
    mb = int(value)
    return f"{mb // 1024}GB" if mb >= 1024 and mb % 1024 == 0 else f"{mb}MB"


def recommend_settings(
    *,
    ram_gb: float | None = None,
    max_connections: int = 100,
    storage: str = "ssd",
    cores: int | None = None,
) -> pd.DataFrame:
    """One row per setting: name, recommended value, and the rule that gave it."""
    if ram_gb is None:
        ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = cores or os.cpu_count() or 1
    if ram_gb <= 0:
        raise ConfigError("ram_gb must be greater than 0")
    if max_connections < 1:
        raise ConfigError("max_connections must be greater or equal than 1")
    if storage not in STORAGE:
        raise ConfigError(f"storage {storage!r} is unknown: use one of {', '.join(STORAGE)}")
    ram_mb = ram_gb * 1024
    shared = ram_mb * 0.25
    fast = storage in ("ssd", "nvme")
    rows = [
        ("max_connections", str(max_connections), "as planned for the pool(s)"),
        ("shared_buffers", _mb(shared), "25% of RAM"),
        ("effective_cache_size", _mb(ram_mb * 0.75), "75% of RAM"),
        ("maintenance_work_mem", _mb(min(ram_mb / 16, 2048)), "RAM / 16, at most 2 GB"),
        (
            "work_mem",
            _mb(max(4, (ram_mb - shared) / (max_connections * 3))),
            "(RAM - shared_buffers) / (connections * 3)",
        ),
        (
            "random_page_cost",
            "1.1" if fast else ("4" if storage == "hdd" else "1.5"),
            f"{storage} storage",
        ),
        (
            "effective_io_concurrency",
            "200" if fast else ("2" if storage == "hdd" else "100"),
            f"{storage} storage",
        ),
        ("wal_buffers", "16MB", "fixed"),
        ("checkpoint_completion_target", "0.9", "spread checkpoints"),
        ("max_wal_size", "4GB" if fast else "2GB", f"{storage} storage"),
        ("min_wal_size", "1GB", "fixed"),
        ("default_statistics_target", "100", "fixed"),
        ("max_worker_processes", str(cores + 16), "cores + TimescaleDB and pg_cron workers"),
        ("max_parallel_workers", str(cores), "cores"),
        ("max_parallel_workers_per_gather", str(max(1, cores // 2)), "cores / 2"),
    ]
    return pd.DataFrame(rows, columns=["setting", "recommended", "rule"])


def compare_with_server(conn: psycopg.Connection, recommendations: pd.DataFrame) -> pd.DataFrame:
    """The recommendations next to the server's current values (with units)."""
    current: dict[str, Any] = dict(
        conn.execute(
            "SELECT name, CASE WHEN unit = '8kB' THEN pg_size_pretty(setting::bigint * 8192)"
            " WHEN unit = 'kB' THEN pg_size_pretty(setting::bigint * 1024)"
            " WHEN unit = 'MB' THEN pg_size_pretty(setting::bigint * 1024 * 1024)"
            " ELSE setting || coalesce(unit, '') END FROM pg_settings WHERE name = ANY(%s)",
            (list(recommendations.setting),),
        ).fetchall()
    )
    out = recommendations.copy()
    out.insert(2, "current", out.setting.map(current))
    return out


def as_config(recommendations: pd.DataFrame) -> str:
    """A postgresql.conf snippet."""
    lines = ["# recommended by ibcbench (seed's rules); review before applying"]
    lines += [f"{r.setting} = {r.recommended}    # {r.rule}" for r in recommendations.itertuples()]
    return "\n".join(lines) + "\n"
