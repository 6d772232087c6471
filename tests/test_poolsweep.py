"""The pool sweep on the real server: pool shapes, the window's pool figures, waits split."""

from __future__ import annotations

import pytest

from ibcbench.bench.poolsweep import plot_sweep, sweep_pool_settings

pytestmark = pytest.mark.db


def test_sweep_offers_fixed_size_pools_and_splits_waits(loaded_dsn: str) -> None:
    result = sweep_pool_settings(loaded_dsn, max_sizes=(1, 8), clients=(4,), prepared=(True,),
                                 fixed_size=(False, True), duration_s=0.6, warmup_s=0.3)  # fmt: skip
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
