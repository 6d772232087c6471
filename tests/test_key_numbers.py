"""Every benchmark result's key numbers on the real server and the tiny dataset (seed 42).

Numbers that follow from the data (row counts, the profile, chunk counts, index sizes, plan shapes,
incidents and health scores) are asserted as the literal values recorded from a run:
"tiny, seed 42, recorded from ``python -m pytest tests/test_key_numbers.py``" on PostgreSQL 15 with
TimescaleDB 2.28 (Community edition), the same on two fresh loads. Numbers that follow from timings
(p50s, rates, speed-ups, refresh and retention times, WAL of a timed run) are checked for what any
correct measurement satisfies: present, finite, positive, in plausible units, ordered (p99 >= p50),
never re-derived here with the code's own formula. Each test also checks that ``save(run_dir)`` writes
what the report reads and ``save(None)`` writes nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
from ibcbench.bench.incidents import score_monitors
from ibcbench.bench.indexes import benchmark_index_strategies
from ibcbench.bench.poolsweep import sweep_pool_settings
from ibcbench.data.profile import profile_dataset
from ibcbench.errors import BenchmarkError, RunError
from ibcbench.metrics import all_metrics
from ibcbench.results.recorded import record_results
from ibcbench.results.runs import Run, new_run
from ibcbench.suite.report import build_report
from tests.conftest import PRIMARY_EDITION

pytestmark = pytest.mark.db

#: a plausible latency of one query at tiny scale, in milliseconds
P50_MS = (0.001, 60_000.0)


def _files(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} - {"manifest.json"}


def _run(tmp_path: Path) -> Run:
    return new_run("keys", root=tmp_path)


def _timed(value: Any, low: float, high: float) -> None:
    """A number from a timing: present, finite and within [low, high]."""
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    assert math.isfinite(value) and low <= value <= high, value


def _saves_nothing(result: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``save(None)`` writes no file: not in a run folder, not in the working directory."""
    run = _run(tmp_path / "none")
    monkeypatch.chdir(run.path)
    assert result.save(None) is None
    assert _files(run.path) == set()


def test_index_strategy_numbers(
    loaded_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = benchmark_index_strategies(
        loaded_dsn,
        strategies=("none", "service"),
        queries=("wallet_history", "packet_by_channel_sequence"),
        repetitions=5,
        ingest_rows=500,
    )
    keys = result.key_numbers()
    # timings: every p50 plausible and below its p99, both speed-ups an index's over a seq scan
    for row in result.latency.itertuples():
        _timed(row.p50_ms, *P50_MS)
        assert row.p50_ms <= row.p99_ms and row.n == 5
    _timed(keys["wallet_history_p50_ms_none"], *P50_MS)
    _timed(keys["wallet_history_p50_ms_service"], *P50_MS)
    _timed(keys["wallet_history_speedup"], 1.0, 1e6)  # recorded 15..37 on two runs
    _timed(keys["packet_lookup_speedup"], 1.0, 1e6)  # recorded 28..70 on two runs
    assert keys["winners"] == {"wallet_history": "service", "packet_by_channel_sequence": "service"}
    assert set(keys["ingest_rows_per_s"]) == {"none", "service"}
    for rate in keys["ingest_rows_per_s"].values():
        _timed(rate, 1.0, 1e9)
    # tiny, seed 42, recorded from python -m pytest tests/test_key_numbers.py: the service
    # strategy's indexes and their sizes, and the plans each strategy gets
    sizes = result.indexes[result.indexes.strategy == "service"].set_index("index").size_bytes
    assert sizes.to_dict() == {
        "idx_clearing_operations_wallet_created": 1_515_520,
        "idx_clearing_operations_wallet_status": 606_208,
        "idx_packet_flow_status_created": 835_584,
        "idx_packet_flow_channel_sequence": 1_032_192,
        "idx_network_stats_chain_date": 16_384,
        "idx_relayer_performance_reputation": 16_384,
        "idx_packet_flow_stuck": 24_576,
        "idx_packet_flow_sender_created": 1_622_016,
        "idx_channel_performance_hour_congestion": 139_264,
        "idx_clearing_operations_open": 16_384,
    }
    plans = result.plans[["strategy", "query", "top_scan", "indexes_used", "shared_hit"]]
    assert [tuple(r) for r in plans.itertuples(index=False)] == [
        ("none", "wallet_history", "Seq Scan", "", 552),
        ("none", "packet_by_channel_sequence", "Seq Scan", "", 926),
        (
            "service",
            "wallet_history",
            "Bitmap Heap Scan",
            "idx_clearing_operations_wallet_status",
            3,
        ),
        (
            "service",
            "packet_by_channel_sequence",
            "Index Scan",
            "_hyper_1_1_chunk_idx_packet_flow_channel_sequence",
            3,
        ),
    ]
    _saves_nothing(result, tmp_path, monkeypatch)
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
    assert keys["packet_lookup_speedup"] is None
    _timed(keys["wallet_history_p50_ms_service"], *P50_MS)
    assert keys["winners"] == {"wallet_history": "service"}  # the only strategy measured
    assert set(keys["ingest_rows_per_s"]) == {"service"}


def test_pool_sweep_numbers(
    loaded_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    assert len(f) == 8  # 2 sizes x 2 client counts x prepared or not
    # the knee is one of the swept sizes; a lower share never needs a bigger pool
    assert keys["knee_max_size"] in (1, 2)
    assert result.knee(share=0.0) == 1  # every size reaches 0% of the best
    assert result.knee(share=0.0) <= keys["knee_max_size"] <= result.knee(share=1.0)
    _timed(keys["best_qps"], 1.0, 1e7)
    assert keys["errors"] == 0  # recorded: no request failed at this load
    assert 0 <= keys["client_bound_points"] <= len(f)  # recorded 1 and 3 on two runs
    _timed(keys["prepared_gain"], 0.01, 100.0)  # recorded 1.20..1.26
    _timed(keys["max_wait_ms_per_request"], 0.0, 60_000.0)
    for row in f.itertuples():
        _timed(row.throughput_qps, 0.0, keys["best_qps"])
        assert row.p50_ms <= row.p99_ms
    _saves_nothing(result, tmp_path, monkeypatch)
    run = _run(tmp_path)
    result.save(str(run.path))
    assert {"figures/03_pool_sweep.png", "results/pool_sweep.parquet"} <= _files(run.path)


def test_layout_numbers(loaded_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = ts.benchmark_layouts(loaded_dsn, chunk_intervals=("1 hour", "1 day"), repetitions=2)
    keys = result.key_numbers()
    # tiny, seed 42, recorded from python -m pytest tests/test_key_numbers.py: a day of packets,
    # 24 hourly chunks; the time-bounded lookup scans one of them, the unbounded one all 24
    assert {k: v for k, v in keys.items() if k != "point_lookup_ratio_many_chunks_vs_plain"} == {
        "most_chunks_layout": "hypertable_1_hour",
        "chunks_total": 24,
        "chunks_scanned_bounded": 1,
        "chunks_scanned_unbounded": 24,
    }
    _timed(keys["point_lookup_ratio_many_chunks_vs_plain"], 1e-3, 1e4)  # recorded 10..70
    layouts = result.layouts.set_index("layout")
    assert layouts.partitions.to_dict() == {
        "plain": 1,
        "partitioned_1_day": 1,
        "hypertable_1_hour": 24,
        "hypertable_1_day": 1,
    }
    assert layouts.size_bytes.to_dict() == {
        "plain": 13_426_688,
        "partitioned_1_day": 13_426_688,
        "hypertable_1_hour": 16_982_016,
        "hypertable_1_day": 14_295_040,
    }
    hourly = result.queries[result.queries.layout == "hypertable_1_hour"].set_index("query")
    assert hourly.partitions_scanned.to_dict() == {
        "recent_2h_count": 3,
        "hourly_last_day": 24,
        "point_lookup": 24,
        "point_lookup_time_bounded": 1,
        "sender_recent": 24,
    }
    others = result.queries[result.queries.layout != "hypertable_1_hour"]
    assert (others.partitions_scanned == 1).all() and (
        result.queries.excluded_at_runtime == 0
    ).all()
    for row in result.queries.itertuples():
        _timed(row.p50_ms, *P50_MS)
        assert row.p50_ms <= row.p99_ms
    _saves_nothing(result, tmp_path, monkeypatch)
    run = _run(tmp_path)
    result.save(run.path)
    assert {
        "figures/05_layouts.png",
        "results/ts_layouts.parquet",
        "results/ts_layout_queries.parquet",
    } <= _files(run.path)


ROLLUP_METHODS = {
    "raw GROUP BY",
    "plain materialized view",
    "incremental rollup (watermark)",
    "continuous aggregate (real-time)",
    "continuous aggregate (materialized-only)",
    "hierarchical: daily over hourly",
}
RETENTION_METHODS = {
    "DELETE on a plain table",
    "DETACH + DROP partitions",
    "drop_chunks on a hypertable",
    "add_retention_policy (a job)",
}


def test_rollup_and_retention_numbers(
    loaded_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollups = ts.benchmark_rollups(loaded_dsn, new_packets=200, repetitions=1)
    retention = ts.benchmark_retention(loaded_dsn, keep_hours=6)
    keys = record_results(rollups, retention)
    assert keys["rollup_matches_raw"] is True
    if PRIMARY_EDITION == "community":
        # tiny, seed 42, recorded from python -m pytest tests/test_key_numbers.py (Community):
        # the 200 new packets are missing from a materialized-only read, present in a real-time one
        assert {
            k: keys[k]
            for k in (
                "caggs_available",
                "cagg_stale_rows_materialized_only",
                "cagg_stale_rows_real_time",
                "cagg_hierarchical_matches_hourly",
                "cagg_policy_runs",
                "cagg_policy_failures",
                "cagg_policy_status",
            )
        } == {
            "caggs_available": True,
            "cagg_stale_rows_materialized_only": 200,
            "cagg_stale_rows_real_time": 0,
            "cagg_hierarchical_matches_hourly": True,
            "cagg_policy_runs": 1,
            "cagg_policy_failures": 0,
            "cagg_policy_status": "Success",
        }
        assert set(keys["refresh_ms"]) == ROLLUP_METHODS
        assert set(keys["retention_ms"]) == set(keys["retention_wal_bytes"]) == RETENTION_METHODS
    else:
        assert keys["caggs_available"] is False
    for ms in keys["refresh_ms"].values():  # NaN (unavailable) is recorded as null
        assert ms is None or (math.isfinite(ms) and 0 <= ms <= 600_000)
    for ms in keys["retention_ms"].values():
        _timed(ms, 0.0, 600_000.0)
    wal = keys["retention_wal_bytes"]
    for size in wal.values():
        assert isinstance(size, int) and size > 0
    # deleting 13,836 rows one by one logs more than dropping whole partitions or chunks
    assert all(
        wal["DELETE on a plain table"] > v
        for k, v in wal.items()
        if k.startswith(("DETACH", "drop"))
    )
    # tiny, seed 42: every method keeps the last 6 hours' 6,164 packets of 20,000
    kept = retention.frame.set_index("method")[["rows_kept", "rows_removed"]]
    assert {tuple(r) for r in kept.itertuples(index=False)} == {(6_164, 13_836)}
    _saves_nothing(rollups, tmp_path / "r", monkeypatch)
    _saves_nothing(retention, tmp_path / "t", monkeypatch)
    run = _run(tmp_path)
    rollups.save(run.path)
    retention.save(run.path)
    assert _files(run.path) >= {"results/ts_rollups.parquet", "results/ts_retention.parquet"}


def test_bloat_numbers_come_from_the_named_stages(
    loaded_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = m.demonstrate_bloat(loaded_dsn, delete_share=0.6, lookups=5)
    keys = result.key_numbers()
    # tiny, seed 42, recorded from python -m pytest tests/test_key_numbers.py: the index on
    # 18,761 rows, its size unchanged by DELETE + VACUUM, its fresh leaf density
    assert keys["index_bytes_before"] == 1_515_520 and keys["bloat_detected"] is True
    assert result.stage(m.STAGE_FRESH).leaf_density_pct == 90.13
    assert result.stage(m.STAGE_FRESH).index_bytes == 1_515_520
    # the rows deleted are drawn by random(): 60% of them, give or take (recorded 36.56, 36.78
    # and after REINDEX 606,208 or 614,400 bytes at 89.4..90.1%)
    assert 30.0 <= keys["leaf_density_before"] <= 45.0
    assert keys["leaf_density_after"] >= 80.0 > keys["leaf_density_before"]
    assert 0.3 * 1_515_520 <= keys["index_bytes_after"] <= 0.5 * 1_515_520
    _timed(keys["lookup_p50_ms_before"], *P50_MS)
    _timed(keys["lookup_p50_ms_after"], *P50_MS)
    # the same numbers whatever order the stages are in
    shuffled = m.BloatResult(result.frame.iloc[::-1], result.detected, result.manifest)
    assert shuffled.key_numbers() == keys
    with pytest.raises(BenchmarkError, match="the bloat result has no stage 'after REINDEX"):
        m.BloatResult(result.frame.iloc[:2], result.detected, result.manifest).key_numbers()
    _saves_nothing(result, tmp_path, monkeypatch)
    run = _run(tmp_path)
    result.save(None)
    assert _files(run.path) == set()
    result.save(run)
    assert _files(run.path) == {"results/maint_bloat.parquet", "results/maint_bloat.csv"}


def test_monitoring_numbers(
    loaded_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = m.check_monitoring(loaded_dsn)
    # tiny, seed 42: one health score per chain, 22 chains
    assert result.key_numbers() == {"health_scores": 22}
    health = result["network_health"]
    assert (health.chain_id.iloc[0], float(health.health_score.iloc[0])) == ("core-1", 96.26)
    assert (health.chain_id.iloc[-1], float(health.health_score.iloc[-1])) == ("secret-4", 77.93)
    _saves_nothing(result, tmp_path, monkeypatch)
    run = _run(tmp_path)
    result.save(run.path)
    assert _files(run.path) == {"figures/06_network_health.png"}


def test_incident_numbers(loaded_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = score_monitors(loaded_dsn)
    # tiny, seed 42, recorded from python -m pytest tests/test_key_numbers.py: the four planted
    # incidents, the monitors' scores against them and the health score ranking
    assert result.key_numbers() == {
        "incidents_planted": 4,
        "health_window_days": 1,  # the whole data span: one day at tiny
        "incidents_chain_halt": 1,
        "incidents_relayer_outage": 1,
        "incidents_congestion": 1,
        "incidents_client_expiry": 1,
        "monitor_health_score_hits": 3,
        "monitor_health_score_misses": 1,
        "monitor_health_score_false_alarms": 1,
        "monitor_stuck_packets_hits": 0,
        "monitor_stuck_packets_misses": 1,
        "monitor_stuck_packets_false_alarms": 0,
        "monitor_long_running_queries_hits": 1,
        "monitor_long_running_queries_misses": 0,
        "monitor_long_running_queries_false_alarms": 0,
        "health_best": 96.26,
        "health_best_chain": "core-1",
        "health_worst": 77.93,
        "health_worst_chain": "secret-4",
        "health_spread": 18.33,
        "incident_chains": 4,
        "incident_chain_ranks": [1, 3, 4, 17],
        "incident_chains_rank_lowest": False,
    }
    _saves_nothing(result, tmp_path, monkeypatch)
    run = _run(tmp_path)
    result.save(run.path)
    assert {
        "results/maint_incidents.parquet",
        "results/maint_incident_alerts.parquet",
        "results/maint_monitor_scores.parquet",
        "figures/06_incident_timeline.png",
    } <= _files(run.path)


def test_plan_comparison_numbers(
    loaded_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    # tiny, seed 42, recorded from python -m pytest tests/test_key_numbers.py: both queries get
    # an index; three of the workload's plans change with random_page_cost
    assert {
        k: keys[k]
        for k in ("queries", "plans_changed", "worst_q_error", "random_page_cost_plans_changed")
    } == {
        "queries": 2,
        "plans_changed": 2,
        "worst_q_error": 2.0,
        "random_page_cost_plans_changed": 3,
    }
    assert diff.changed() == ["wallet", "stuck"]
    assert rpc.diff.changed() == ["wallet_history", "wallet_by_status", "hourly_packet_stats"]
    assert rpc.key_numbers() == {"random_page_cost_plans_changed": 3}
    wallet, stuck = diff.diffs["wallet"], diff.diffs["stuck"]
    assert (wallet.before.node_kinds, wallet.after.node_kinds) == (
        ("Limit", "Sort", "Seq Scan"),
        ("Limit", "Sort", "Bitmap Heap Scan", "Bitmap Index Scan"),
    )
    assert stuck.before.node_kinds == ("Aggregate", "Seq Scan")
    # after: an Index Only Scan or a bitmap scan, as the visibility map stands (both seen)
    assert stuck.after.top_scan in ("Index Only Scan", "Bitmap Heap Scan")
    assert stuck.after.indexes == {"idx_clearing_operations_wallet_status"}
    # verdicts and speed-ups come from the plans' timings
    assert keys["faster"] >= 0 and keys["slower"] >= 0 and keys["faster"] + keys["slower"] <= 2
    assert keys["biggest_change_query"] in ("wallet", "stuck")
    _timed(keys["biggest_speedup"], 1.0, 1e6)  # an index over a seq scan: recorded 29..107
    _saves_nothing(result, tmp_path, monkeypatch)
    run = _run(tmp_path)
    result.save(run.path)
    assert _files(run.path) == {str(DIFF_HTML), "figures/04_biggest_plan_change.png"}
    page = (run.path / DIFF_HTML).read_text()
    assert "wallet" in page and page.count("<table") >= 2  # both diffs, one after the other
    assert (
        page in build_report(run, metrics=all_metrics()).read_text()
    )  # the report finds it by the same constant


def test_profile_numbers(loaded_dsn: str, tmp_path: Path) -> None:
    profile = profile_dataset(loaded_dsn)
    keys = profile.key_numbers()
    # tiny, seed 42, recorded from python -m pytest tests/test_key_numbers.py
    assert keys == {
        "rows_packet_flow": 20_000,
        "rows_clearing_operations": 18_761,
        "rows_network_stats": 22,
        "rows_channel_performance": 3_695,
        "rows_relayer_performance": 24,
        "chain_pairs": 208,
        "chains": 22,
        "stuck_pct": 0.17,
        "timeout_pct": 0.55,
        "acknowledged_pct": 98.76,
        "clear_time_p50_s": pytest.approx(48.969385),
        "clear_time_p99_s": pytest.approx(471.35562915),
        "relayers_on_busiest_channel": 3,
        "redundant_relay_pct": 9.55,
    }
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
