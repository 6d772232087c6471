"""Every benchmark result's key numbers, checked against the frames they come from (real server, tiny data).

Each test runs one benchmark small, recomputes the recorded numbers from the result's own frames here
(by stage and layout name, never by position) and checks ``save(run_dir)`` writes what the report reads
and ``save(None)`` writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ibcbench.bench import maintenance as m
from ibcbench.bench import timescale as ts
from ibcbench.bench.explain import (
    DIFF_HTML,
    PlanComparisonResult,
    PlanConfig,
    compare_configurations,
    compare_random_page_cost,
)
from ibcbench.bench.indexes import benchmark_index_strategies
from ibcbench.bench.poolsweep import sweep_pool_settings
from ibcbench.data.profile import profile_dataset
from ibcbench.errors import BenchmarkError, RunError
from ibcbench.results.recorded import record_results
from ibcbench.results.runs import Run, new_run
from ibcbench.suite.report import build_report

pytestmark = pytest.mark.db


def _files(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} - {"manifest.json"}


def _run(tmp_path: Path) -> Run:
    return new_run("keys", root=tmp_path)


def test_index_strategy_numbers(loaded_dsn: str, tmp_path: Path) -> None:
    result = benchmark_index_strategies(
        loaded_dsn,
        strategies=("none", "service"),
        queries=("wallet_history", "packet_by_channel_sequence"),
        repetitions=5,
        ingest_rows=500,
    )
    keys = result.key_numbers()
    p50 = result.latency.set_index(["strategy", "query"]).p50_ms
    assert keys["wallet_history_p50_ms_none"] == p50["none", "wallet_history"]
    assert keys["wallet_history_p50_ms_service"] == p50["service", "wallet_history"]
    assert keys["wallet_history_speedup"] == pytest.approx(
        p50["none", "wallet_history"] / p50["service", "wallet_history"]
    )
    assert keys["packet_lookup_speedup"] == pytest.approx(
        p50["none", "packet_by_channel_sequence"] / p50["service", "packet_by_channel_sequence"]
    )
    best = p50.groupby(level="query").idxmin()
    assert keys["winners"] == {q: s for q, (s, _) in best.items()}
    assert keys["ingest_rows_per_s"] == result.ingest.set_index("strategy").rows_per_s.to_dict()
    run = _run(tmp_path)
    result.save(run.path)
    assert {
        "figures/02_latency_by_strategy.png",
        "figures/02_cost_by_strategy.png",
        "results/index_latency.parquet",
        "results/index_usage.parquet",
    } <= _files(run.path)
    assert run.manifest()["index_strategies"] == result.manifest


def test_index_strategy_numbers_without_the_baseline_are_none(loaded_dsn: str) -> None:
    result = benchmark_index_strategies(
        loaded_dsn,
        strategies=("service",),
        queries=("wallet_history",),
        repetitions=3,
        ingest_rows=200,
    )
    keys = result.key_numbers()
    assert keys["wallet_history_p50_ms_none"] is None and keys["wallet_history_speedup"] is None
    assert keys["wallet_history_p50_ms_service"] == result.p50("service", "wallet_history")


def test_pool_sweep_numbers(loaded_dsn: str, tmp_path: Path) -> None:
    result = sweep_pool_settings(
        loaded_dsn,
        max_sizes=(1, 2),
        clients=(1, 3),
        prepared=(True, False),
        duration_s=0.3,
        warmup_s=0.1,
    )
    keys = result.key_numbers()
    f = result.frame
    top = f[f.prepared & (f.clients == f.clients.max())].groupby("max_size").throughput_qps.mean()
    assert keys["knee_max_size"] == min(
        size for size, qps in top.items() if qps >= 0.95 * top.max()
    )
    # the knee is the smallest size that reaches the share: every size reaches 0%, only the best 100%
    assert result.knee(share=0.0) == 1 and result.knee(share=1.0) == top.idxmax()
    assert keys["best_qps"] == f.throughput_qps.max()
    assert keys["errors"] == f.errors.sum() and keys["client_bound_points"] == f.client_bound.sum()
    by_prepared = f.groupby("prepared").throughput_qps.mean()
    assert keys["prepared_gain"] == pytest.approx(by_prepared[True] / by_prepared[False])
    assert keys["max_wait_ms_per_request"] == f.wait_ms_per_request.max()
    run = _run(tmp_path)
    result.save(str(run.path))
    assert {"figures/03_pool_sweep.png", "results/pool_sweep.parquet"} <= _files(run.path)


def test_layout_numbers(loaded_dsn: str, tmp_path: Path) -> None:
    result = ts.benchmark_layouts(loaded_dsn, chunk_intervals=("1 hour", "1 day"), repetitions=2)
    keys = result.key_numbers()
    layouts = result.layouts.set_index("layout")
    many = layouts.partitions.idxmax()
    assert keys["most_chunks_layout"] == many
    assert keys["chunks_total"] == layouts.partitions.max()
    q = result.queries.set_index(["layout", "query"])
    assert keys["chunks_scanned_bounded"] == q.partitions_scanned[many, "point_lookup_time_bounded"]
    assert keys["chunks_scanned_unbounded"] == q.partitions_scanned[many, "point_lookup"]
    assert keys["point_lookup_ratio_many_chunks_vs_plain"] == pytest.approx(
        q.p50_ms[many, "point_lookup"] / q.p50_ms["plain", "point_lookup"]
    )
    run = _run(tmp_path)
    result.save(run.path)
    assert {
        "figures/05_layouts.png",
        "results/ts_layouts.parquet",
        "results/ts_layout_queries.parquet",
    } <= _files(run.path)


def test_rollup_and_retention_numbers(loaded_dsn: str, tmp_path: Path) -> None:
    rollups = ts.benchmark_rollups(loaded_dsn, new_packets=200, repetitions=1)
    retention = ts.benchmark_retention(loaded_dsn, keep_hours=6)
    keys = record_results(rollups, retention)
    assert keys["caggs_available"] == (rollups.continuous_aggregates == "measured")
    assert keys["rollup_matches_raw"] == rollups.rollup_matches_raw
    refresh = rollups.frame.set_index("method").refresh_ms
    assert set(keys["refresh_ms"]) == set(refresh.index)
    for method, ms in keys["refresh_ms"].items():  # NaN (unavailable) is recorded as null
        assert ms == refresh[method] or (ms is None and refresh.isna()[method])
    frame = retention.frame.set_index("method")
    assert keys["retention_ms"] == frame.elapsed_ms.to_dict()
    assert keys["retention_wal_bytes"] == frame.wal_bytes.to_dict()
    run = _run(tmp_path)
    rollups.save(run.path)
    retention.save(run.path)
    assert _files(run.path) >= {"results/ts_rollups.parquet", "results/ts_retention.parquet"}


def test_bloat_numbers_come_from_the_named_stages(loaded_dsn: str, tmp_path: Path) -> None:
    result = m.demonstrate_bloat(loaded_dsn, delete_share=0.6, lookups=5)
    keys = result.key_numbers()
    stages = result.frame.set_index("stage")
    bloated, repaired = stages.loc["after deleting 60% + VACUUM"], stages.loc[m.STAGE_REINDEXED]
    assert keys["leaf_density_before"] == bloated.leaf_density_pct
    assert keys["leaf_density_after"] == repaired.leaf_density_pct
    assert keys["index_bytes_before"] == bloated.index_bytes
    assert keys["index_bytes_after"] == repaired.index_bytes
    assert keys["lookup_p50_ms_before"] == bloated.p50_ms
    assert keys["lookup_p50_ms_after"] == repaired.p50_ms
    assert keys["bloat_detected"] == (len(result.detected) > 0)
    # the same numbers whatever order the stages are in
    shuffled = m.BloatResult(result.frame.iloc[::-1], result.detected, result.manifest)
    assert shuffled.key_numbers() == keys
    with pytest.raises(BenchmarkError, match="the bloat result has no stage 'after REINDEX"):
        m.BloatResult(result.frame.iloc[:2], result.detected, result.manifest).key_numbers()
    run = _run(tmp_path)
    result.save(None)
    assert _files(run.path) == set()
    result.save(run)
    assert _files(run.path) == {"results/maint_bloat.parquet", "results/maint_bloat.csv"}


def test_monitoring_numbers(loaded_dsn: str, tmp_path: Path) -> None:
    result = m.check_monitoring(loaded_dsn)
    assert result.key_numbers() == {"health_scores": len(result["network_health"])}
    assert result.key_numbers()["health_scores"] == 22
    run = _run(tmp_path)
    result.save(run.path)
    assert _files(run.path) == {"figures/06_network_health.png"}


def test_plan_comparison_numbers(loaded_dsn: str, tmp_path: Path) -> None:
    queries = [
        (
            "wallet",
            "SELECT * FROM clearing_operations WHERE wallet_address = %s ORDER BY created_at DESC LIMIT 5",
            ("x",),
        ),
        ("stuck", "SELECT count(*) FROM clearing_operations WHERE status = %s", ("stuck",)),
    ]
    diff = compare_configurations(
        loaded_dsn, PlanConfig("none", "none"), PlanConfig("service", "service"), queries=queries
    )
    rpc = compare_random_page_cost(loaded_dsn, ["4", "1.1"])
    result = PlanComparisonResult(diff, rpc.diff)
    keys = result.key_numbers()
    summary = diff.summary().set_index("query")
    biggest = summary.ratio.idxmin()
    assert keys["queries"] == 2 and keys["biggest_change_query"] == biggest
    assert keys["faster"] == (summary.verdict == "faster").sum()
    assert keys["slower"] == (summary.verdict == "slower").sum()
    assert keys["plans_changed"] == len(diff.changed()) >= 1  # the wallet lookup uses the index
    assert keys["biggest_speedup"] == pytest.approx(
        diff.diffs[biggest].before.total_ms / diff.diffs[biggest].after.total_ms
    )
    assert keys["worst_q_error"] == diff.worst_estimates().q_error.max()
    assert keys["random_page_cost_plans_changed"] == len(rpc.diff.changed())
    assert rpc.key_numbers() == {"random_page_cost_plans_changed": len(rpc.diff.changed())}
    run = _run(tmp_path)
    result.save(run.path)
    assert _files(run.path) == {str(DIFF_HTML), "figures/04_biggest_plan_change.png"}
    page = (run.path / DIFF_HTML).read_text()
    assert "wallet" in page and page.count("<table") >= 2  # both diffs, one after the other
    assert page in build_report(run).read_text()  # the report finds it by the same constant


def test_profile_numbers(loaded_dsn: str, tmp_path: Path) -> None:
    profile = profile_dataset(loaded_dsn)
    keys = profile.key_numbers()
    rows = profile["table_rows"].set_index("table_name")["rows"]
    assert {k: v for k, v in keys.items() if k.startswith("rows_")} == {
        f"rows_{t}": n for t, n in rows.items()
    }
    assert keys["rows_packet_flow"] == 20_000
    status = profile["status_mix"].set_index("status").pct
    assert keys["stuck_pct"] == status.get("stuck", 0.0)
    assert keys["chain_pairs"] == len(profile["chain_pairs"])
    assert profile.save(None) is None
    assert profile.save(tmp_path) == tmp_path / "figures" / "01_dataset_profile.png"
    assert profile.save(tmp_path).exists()


def test_record_results_refuses_a_key_given_twice(loaded_dsn: str) -> None:
    profile = profile_dataset(loaded_dsn)
    with pytest.raises(RunError, match="key number 'chains' is recorded twice"):
        record_results(profile, chains=3)
    assert record_results(profile, extra=1)["extra"] == 1


def test_random_page_cost_needs_two_values() -> None:
    with pytest.raises(
        BenchmarkError, match=r"give two random_page_cost values to compare, not \['4'\]"
    ):
        compare_random_page_cost("host=/nonexistent dbname=x", ["4"])  # refused before connecting
