"""The two engines behind one call (:func:`run_workload`), and the same query through both
(:func:`run_fidelity`: how far the Python runner's figures follow pgbench's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ibcbench.bench.workload.pgbench import run_pgbench
from ibcbench.bench.workload.python import run_python
from ibcbench.bench.workload.queries import Workload, default_workload, sample_parameters
from ibcbench.bench.workload.summary import WorkloadResult
from ibcbench.db import connect, resolve_dsn
from ibcbench.errors import BenchmarkError


def run_workload(
    dsn: str | None, workload: Workload, *, engine: str = "python", **kwargs: Any
) -> WorkloadResult:
    """Run ``workload`` with the ``python`` runner or ``pgbench``."""
    if engine == "python":
        return run_python(dsn, workload, **kwargs)
    if engine == "pgbench":
        kwargs.pop("pool_config", None)
        kwargs.pop("pool_timeout_s", None)
        return run_pgbench(dsn, workload, **kwargs)
    raise BenchmarkError(f"engine {engine!r} is unknown: use python or pgbench")


@dataclass(frozen=True)
class FidelityResult:
    frame: pd.DataFrame
    query: str


def run_fidelity(
    dsn: str | None,
    *,
    query: str = "packet_by_channel_sequence",
    clients: tuple[int, ...] = (1, 4, 8, 16),
    duration_s: float = 5.0,
    warmup_s: float = 2.0,
    seed: int = 42,
    parameter_sets: int = 16,
) -> FidelityResult:
    """The same query through both engines at each client count: QPS and the python/pgbench ratio.

    Both engines get the same ``parameter_sets`` sampled values, bound as parameters of prepared
    statements. pgbench holds one prepared statement per set and connection, each planned as custom
    five times before a generic plan; few sets let its warm-up reach that steady state.
    """
    target = resolve_dsn(dsn)
    wl = default_workload().subset([query])
    with connect(target) as conn:
        params = sample_parameters(conn, wl, seed=seed)
    params = {name: values[:parameter_sets] for name, values in params.items()}
    rows = []
    for n in clients:
        py = run_python(
            target,
            wl,
            clients=n,
            duration_s=duration_s,
            warmup_s=warmup_s,
            params=params,
            seed=seed,
        )
        pg = run_pgbench(
            target,
            wl,
            clients=n,
            duration_s=duration_s,
            warmup_s=warmup_s,
            params=params,
            seed=seed,
            per_query=parameter_sets,
        )
        py_qps = float(py.summary.set_index("query").loc[query, "throughput_qps"])
        pg_qps = float(pg.summary.set_index("query").loc[query, "throughput_qps"])
        rows.append(
            {
                "clients": n,
                "python_qps": py_qps,
                "pgbench_qps": pg_qps,
                "ratio": round(py_qps / pg_qps, 3) if pg_qps else np.nan,
                "python_p50_ms": float(py.summary.set_index("query").loc[query, "p50_ms"]),
                "pgbench_p50_ms": float(pg.summary.set_index("query").loc[query, "p50_ms"]),
                "client_cpu_pct": py.client_cpu_pct,
                "python_select1_qps": py.client_floor_qps,
                "client_bound": py.client_bound,
            }
        )
    return FidelityResult(pd.DataFrame(rows), query)
