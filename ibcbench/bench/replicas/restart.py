"""A standby restarted while the runner keeps going on the primary; routed reads fall back to the
primary (:func:`restart_standby_during_run`)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import psycopg

from ibcbench.bench.replicas.members import (
    SERVICE,
    ReplicaSetup,
    ReplicasNotAvailable,
    wait_caught_up,
)
from ibcbench.bench.workload import default_workload, sample_parameters
from ibcbench.bench.workload.python import run_python
from ibcbench.db import connect
from ibcbench.errors import BenchmarkError
from ibcbench.results.metrics.metric import THROUGHPUT, TIMING, Metric
from ibcbench.results.recorded import save_frame
from ibcbench.toolkit.pool import PoolConfig
from ibcbench.toolkit.routing import RoutingConfig, create_routed_pool


@dataclass(frozen=True)
class RestartResult:
    primary: pd.DataFrame  # the runner's summary on the primary
    reads: dict[str, Any]  # routed reads: on the standby, fallen back to the primary, errors
    restart_s: float
    catch_up_s: float

    def save(self, run_dir: Any) -> None:
        save_frame(self.primary, "replica_restart_primary", run_dir)

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        Metric(
            "restart_primary_errors",
            "lower",
            "errors",
            note="0 expected: the primary keeps serving",
        ),
        Metric("restart_primary_qps", "higher", "queries/s", THROUGHPUT),
        Metric(
            "restart_read_errors",
            "lower",
            "errors",
            1.0,
            2.0,
            note="reads on the standby as it went down",
        ),
        Metric(
            "restart_reads_fell_back",
            "none",
            "reads",
            note="routed reads sent to the primary meanwhile",
        ),
        Metric("restart_reads_on_standby", "none", "reads"),
        Metric("restart_s", "lower", "s", TIMING, 1.0, note="the standby's stop and start"),
    )

    def key_numbers(self) -> dict[str, Any]:
        total = self.primary.set_index("query").loc["ALL"]
        return {
            "restart_primary_errors": int(total.errors),
            "restart_primary_qps": float(total.throughput_qps),
            "restart_read_errors": int(self.reads["errors"]),
            "restart_reads_fell_back": int(self.reads["reads_primary"]),
            "restart_reads_on_standby": int(self.reads["reads_replica"]),
            "restart_s": round(self.restart_s, 2),
        }


def restart_standby_during_run(
    setup: ReplicaSetup, *, duration_s: float = 6.0, clients: int = 2, seed: int = 42
) -> RestartResult | ReplicasNotAvailable:
    """The service mix on the primary for ``duration_s``; routed analytics reads alongside; the
    standby restarted (fast stop, start) at the middle. Needs the embedded standby."""
    if setup.skipped is not None:
        return setup.skipped
    if setup.topology is None:
        raise BenchmarkError(
            "a standby restart needs the embedded standby (start_replicas without replica_dsn)"
        )
    wl = default_workload()
    service = wl.subset(SERVICE)
    analytics = wl.subset(["network_stats_range", "relayer_leaderboard"])
    with connect(setup.dsn) as conn:
        s_params = sample_parameters(conn, service, seed=seed)
        a_params = sample_parameters(conn, analytics, seed=seed)
    stop = threading.Event()
    reads = {"errors": 0, "ok": 0}
    routing = RoutingConfig(
        replica_dsns=(setup.replica_dsn,),
        max_lag_s=5.0,
        lag_check_period_s=0.2,
        pool=PoolConfig(
            min_size=1, max_size=2, health_check_period_s=None, slow_query_ms=None, timeout_s=5.0
        ),
    )
    routed = create_routed_pool(routing, setup.dsn)
    restart = {"s": 0.0}

    def read_loop() -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            q = analytics.queries[int(rng.integers(len(analytics.queries)))]
            values = a_params[q.name][int(rng.integers(len(a_params[q.name])))]
            try:
                with routed.reader() as conn:
                    conn.execute(q.sql, values).fetchall()
                reads["ok"] += 1
            except psycopg.Error:
                reads["errors"] += 1
            time.sleep(0.01)

    def restart_later() -> None:
        if stop.wait(duration_s / 2):
            return
        t0 = time.perf_counter()
        setup.topology.restart_replica(setup.replica_index)  # type: ignore[union-attr]
        restart["s"] = time.perf_counter() - t0

    threads = [
        threading.Thread(target=read_loop, daemon=True),
        threading.Thread(target=restart_later, daemon=True),
    ]
    pool_log = logging.getLogger("psycopg.pool")
    level = pool_log.level
    pool_log.setLevel(logging.CRITICAL)  # the replica pool's reconnect attempts are expected here
    try:
        for t in threads:
            t.start()
        result = run_python(
            setup.dsn,
            service,
            clients=clients,
            duration_s=duration_s,
            warmup_s=0.0,
            params=s_params,
            seed=seed,
        )
        threads[1].join()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        stats = routed.stats()
        routed.close()
        pool_log.setLevel(level)
    catch_up = wait_caught_up(setup.dsn, setup.replica_dsn)
    summary = {**stats.as_dict(), **reads}
    return RestartResult(result.summary, summary, restart["s"], catch_up)
