"""The pool sweep on the real server: pool shapes, the window's pool figures, waits split."""

from __future__ import annotations

import pytest

from ibcbench.bench.poolsweep import plot_sweep, sweep_pool_settings
from tests.test_metrics_home import assert_metrics_declared

pytestmark = pytest.mark.db


def test_sweep_offers_fixed_size_pools_and_splits_waits(loaded_dsn: str) -> None:
    result = sweep_pool_settings(
        loaded_dsn,
        max_sizes=(1, 8),
        clients=(4,),
        prepared=(True,),
        fixed_size=(False, True),
        duration_s=0.6,
        warmup_s=0.3,
    )
    f = result.frame.set_index(["max_size", "fixed_size"])
    # the default is the seed's pgx pool (MinConns 5, at most max_size); fixed: min = max
    assert f.min_size.to_dict() == {(1, False): 1, (1, True): 1, (8, False): 5, (8, True): 8}
    one = f.loc[(1, False)]
    # 4 threads on one connection: each request waits for the others' executions
    assert one.wait_p50_ms > one.exec_p50_ms and one.queued_pct > 50
    assert one.wait_p99_ms >= one.wait_p95_ms >= one.wait_p50_ms
    assert f.loc[(8, True)].wait_p95_ms < one.wait_p50_ms
    assert result.manifest["pool_stats"] == "over the measured window"
    assert plot_sweep(result).axes


def test_capacity_sweep_puts_both_engines_on_the_server_side(loaded_dsn: str) -> None:
    from ibcbench.bench.poolcapacity import plot_capacity, sweep_pool_capacity
    from ibcbench.bench.workload import Workload, WorkloadQuery

    # 10 ms a query on the server: one connection serves 100/s, four serve 400/s
    wl = Workload("t", "1", (WorkloadQuery("sleep", "SELECT pg_sleep(%s)", "read", 1, "sleeps"),))
    result = sweep_pool_capacity(
        loaded_dsn,
        max_sizes=(1, 4),
        rate_qps=200,
        threads=8,
        duration_s=1.0,
        warmup_s=1.0,
        workload=wl,
        params={"sleep": [(0.01,)]},
    )
    f = result.frame.set_index(["engine", "max_size"])
    for engine in ("pgbench", "python"):
        assert 70 <= f.loc[(engine, 1), "throughput_qps"] <= 105
        assert f.loc[(engine, 4), "throughput_qps"] >= 250
        # at 200/s one connection falls behind and requests queue for it; four keep up
        assert f.loc[(engine, 1), "wait_p95_ms"] > 200
        assert f.loc[(engine, 4), "wait_p95_ms"] < 50
    assert result.knee() == 4 and result.knee(engine="python") == 4
    assert_metrics_declared(result)
    assert plot_capacity(result).axes
