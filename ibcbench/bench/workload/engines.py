"""The three engines behind one call (:func:`run_workload`), and the same query through each
(:func:`run_fidelity`: how far the Python and pgx runners' figures follow pgbench's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ibcbench.bench.workload.pgbench import run_pgbench
from ibcbench.bench.workload.pgx import pgx_unavailable, run_pgx
from ibcbench.bench.workload.python import run_python
from ibcbench.bench.workload.queries import Workload, default_workload, sample_parameters
from ibcbench.bench.workload.summary import WorkloadResult
from ibcbench.db import connect, resolve_dsn
from ibcbench.errors import BenchmarkError


def run_workload(
    dsn: str | None, workload: Workload, *, engine: str = "python", **kwargs: Any
) -> WorkloadResult:
    """Run ``workload`` with the ``python`` runner, the ``pgx`` runner or ``pgbench``."""
    if engine == "python":
        kwargs.pop("statement_cache", None)
        return run_python(dsn, workload, **kwargs)
    if engine == "pgx":
        return run_pgx(dsn, workload, **kwargs)
    if engine == "pgbench":
        kwargs.pop("pool_config", None)
        kwargs.pop("pool_timeout_s", None)
        kwargs.pop("statement_cache", None)
        return run_pgbench(dsn, workload, **kwargs)
    raise BenchmarkError(f"engine {engine!r} is unknown: use python, pgx or pgbench")


@dataclass(frozen=True)
class FidelityResult:
    frame: pd.DataFrame
    query: str
    #: engines that did not run, each with the reason (the pgx runner not built, say)
    not_available: dict[str, str] = field(default_factory=dict)


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
    """The same query through each engine at each client count: QPS and the python/pgbench and
    pgx/pgbench ratios. Without a built pgx runner its columns are empty and ``not_available``
    says why.

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
    missing = {"pgx": reason} if (reason := pgx_unavailable()) else {}
    for n in clients:
        common: dict[str, Any] = dict(
            clients=n, duration_s=duration_s, warmup_s=warmup_s, params=params, seed=seed
        )
        py = run_python(target, wl, **common)
        pg = run_pgbench(target, wl, per_query=parameter_sets, **common)
        gx = None if missing else run_pgx(target, wl, **common)
        rows.append(_fidelity_row(query, n, py, pg, gx))
    return FidelityResult(pd.DataFrame(rows), query, missing)


def _fidelity_row(
    query: str, clients: int, py: WorkloadResult, pg: WorkloadResult, gx: WorkloadResult | None
) -> dict[str, Any]:
    """One client count's row of :func:`run_fidelity` (pgx's columns NaN when it did not run)."""

    def figure(result: WorkloadResult | None, column: str) -> float:
        if result is None:
            return np.nan
        return float(result.summary.set_index("query").loc[query, column])

    py_qps, pg_qps, gx_qps = (figure(r, "throughput_qps") for r in (py, pg, gx))
    return {
        "clients": clients,
        "python_qps": py_qps,
        "pgx_qps": gx_qps,
        "pgbench_qps": pg_qps,
        "ratio": round(py_qps / pg_qps, 3) if pg_qps else np.nan,
        "pgx_ratio": round(gx_qps / pg_qps, 3) if pg_qps and gx is not None else np.nan,
        "python_p50_ms": figure(py, "p50_ms"),
        "pgx_p50_ms": figure(gx, "p50_ms"),
        "pgbench_p50_ms": figure(pg, "p50_ms"),
        "client_cpu_pct": py.client_cpu_pct,
        "python_select1_qps": py.client_floor_qps,
        "pgx_select1_qps": gx.client_floor_qps if gx is not None else np.nan,
        "client_bound": py.client_bound,
    }
