"""Faults of group ``cache``: the kit's Redis killed (SIGKILL) in the middle of the cache
benchmark's read workload.

``bench cache --kill-redis`` (its default) kills the lab's own Redis halfway through its last run of
the hot reads; the read path must fall back to the database for every read after that, count each
fallback, fail no request, and the command must end with exit 0, its figures printed and Redis
started again; the dataset's rows are unchanged (the staleness measure deletes the row it inserts).
"""

from __future__ import annotations

import re
import shutil
import time

from ibcbench.data.datasets import ensure_dataset
from ibcbench.faults.lab import FaultLab
from ibcbench.faults.registry import FaultOutcome, fault
from ibcbench.infra.redis import LocalRedis

GROUP = "cache"
REQUESTS = 400
#: the CLI's start, the dataset check, three layers of REQUESTS reads, staleness (TTL 1 s, twice)
BOUND_S = 90.0
_DOWN_RE = re.compile(
    r"redis killed after (\d+) of (\d+) requests: (\d+) reads fell back to the database, (\d+) failed"
)


def _stop(redis: LocalRedis) -> None:
    redis.down()


@fault(GROUP, fast=True)
def fault_redis_killed_mid_workload(lab: FaultLab) -> FaultOutcome:
    """``bench cache`` while its Redis is killed halfway: reads fall back, counted, none fails."""
    name = "redis_killed_mid_workload"
    expected = (
        "exit 0; every read after the kill falls back to the database (counted), 0 failed; "
        "Redis running again; rows unchanged"
    )
    if shutil.which("redis-server") is None:
        return FaultOutcome(
            GROUP, name, expected, "redis-server is not installed here", False, ran=False
        )
    dsn = ensure_dataset(lab.admin_dsn, scale=lab.scale, seed=lab.seed)
    redis = LocalRedis(lab.settings)
    lab.on_close(lambda: _stop(redis))
    up = lab.cli("db", "up", "--redis")
    if up.returncode != 0:
        return FaultOutcome(GROUP, name, expected, f"db up --redis: {up.brief()}", False)
    before = lab.digest(dsn)
    started = time.perf_counter()
    result = lab.cli(
        "bench",
        "cache",
        "--scale",
        lab.scale,
        "--seed",
        str(lab.seed),
        "--requests",
        str(REQUESTS),
        "--ttl",
        "30",
        timeout=BOUND_S,
    )
    elapsed = time.perf_counter() - started
    after = lab.digest(dsn)
    m = _DOWN_RE.search(result.stdout)
    killed_after, requests, fallbacks, failed = (int(g) for g in m.groups()) if m else (0,) * 4
    running = redis.is_running()
    survived = (
        result.returncode == 0
        and m is not None
        and failed == 0
        and fallbacks >= requests - killed_after > 0
        and running
        and before == after
        and elapsed <= BOUND_S
    )
    happened = (
        f"exit {result.returncode} in {elapsed:.1f} s; "
        + (
            f"killed after {killed_after} of {requests}: {fallbacks} fallbacks, {failed} failed"
            if m
            else f"no Redis-down line ({result.brief()})"
        )
        + f"; redis {'running' if running else 'NOT running'} after; rows "
        + ("unchanged" if before == after else "CHANGED")
    )
    return FaultOutcome(
        GROUP,
        name,
        expected,
        happened,
        survived,
        rows_before=sum(n for n, _ in before.values()),
        rows_after=sum(n for n, _ in after.values()),
    )
