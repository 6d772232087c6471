"""Notebooks 02 to 06 at tiny scale under papermill, asserting on what they record.

Recorded numbers are checked against the result tables the same run saved (what the report shows),
so a key number that drifts from its table fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from ibcbench.bench.explain import DIFF_HTML
from ibcbench.bench.maintenance import scheduled_jobs
from ibcbench.dsn import with_database
from ibcbench.metrics import all_metrics
from ibcbench.plans import diff_plan_sets, load_plans
from ibcbench.results.runs import new_run
from ibcbench.suite.notebook import notebooks_dir, run_notebook
from ibcbench.suite.report import build_report
from tests.conftest import PRIMARY_EDITION

pytestmark = [pytest.mark.db, pytest.mark.notebook]


def test_02_index_strategies(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb02", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "02_index_strategies.ipynb",
        run,
        {
            "dsn": server_dsn,
            "scale": "tiny",
            "strategies": ["none", "service", "covering"],
            "repetitions": 30,
        },
    )
    assert result.ok, result.error
    rec = result.recorded
    assert sorted(set(rec) - set(all_metrics())) == []  # every recorded key has a metric
    # what the speed-up stands for, asserted on the plans (timings are the benchmark's, not the
    # test's): without secondary indexes wallet history scans the table, with the service's it uses one
    plans = run.read_frame("index_plans").set_index(["strategy", "query"])
    assert "Seq Scan" in plans.top_scan["none", "wallet_history"]
    assert plans.indexes_used["none", "wallet_history"] == ""
    assert "wallet" in plans.indexes_used["service", "wallet_history"]
    assert rec["wallet_history_speedup"] > 0 and set(rec["ingest_rows_per_s"]) == {
        "none",
        "service",
        "covering",
    }
    p50 = run.read_frame("index_latency").set_index(["strategy", "query"]).p50_ms
    assert rec["wallet_history_p50_ms_none"] == p50["none", "wallet_history"]
    assert rec["wallet_history_speedup"] == pytest.approx(
        p50["none", "wallet_history"] / p50["service", "wallet_history"]
    )
    assert rec["packet_lookup_speedup"] == pytest.approx(
        p50["none", "packet_by_channel_sequence"] / p50["service", "packet_by_channel_sequence"]
    )
    assert rec["winners"] == {q: s for q, (s, _) in p50.groupby(level="query").idxmin().items()}
    assert set(rec["winners"].values()) <= {"none", "service", "covering"}
    ingest = run.read_frame("index_ingest").set_index("strategy").rows_per_s
    assert rec["ingest_rows_per_s"] == ingest.to_dict()
    assert (run.path / "figures" / "02_latency_by_strategy.png").exists()
    assert (run.path / "figures" / "02_cost_by_strategy.png").exists()


def test_03_pool_settings(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb03", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "03_pool_settings.ipynb",
        run,
        {
            "dsn": server_dsn,
            "scale": "tiny",
            "max_sizes": [1, 4],
            "clients": [1, 4],
            "duration_s": 0.5,
            "path_clients": [1, 4, 60],
        },
    )
    assert result.ok, result.error
    rec = result.recorded
    # every recorded key has a metric, but the connection paths' at client counts other than the
    # notebook's own (1, 25, 200): their keys name the count, and the table has those three only
    unknown = set(rec) - set(all_metrics())
    assert sorted(k for k in unknown if not re.fullmatch(r"\w+_(4|60)c_(qps|p99_ms)", k)) == []
    assert rec["errors"] == 0
    assert rec["max_wait_ms_per_request"] > 0  # 4 threads on a pool of 1 must wait
    sweep = run.read_frame("pool_sweep")
    assert len(sweep) == 2 * 2 * 2  # max_sizes x clients x prepared
    # the knee: the smallest max_size reaching 95% of the best rate, prepared, at the most clients
    top = sweep[sweep.prepared & (sweep.clients == 4)].groupby("max_size").throughput_qps.mean()
    assert rec["knee_max_size"] == min(s for s, qps in top.items() if qps >= 0.95 * top.max())
    assert rec["best_qps"] == sweep.throughput_qps.max() > 0
    by_prepared = sweep.groupby("prepared").throughput_qps.mean()
    assert rec["prepared_gain"] == pytest.approx(by_prepared[True] / by_prepared[False])
    assert rec["max_wait_ms_per_request"] == sweep.wait_ms_per_request.max()
    assert rec["client_bound_points"] == sweep.client_bound.sum()
    assert (run.path / "figures" / "03_pool_sweep.png").exists()
    # the server's side: pgbench's capacity points, and the three connection paths
    capacity = run.read_frame("pool_capacity")
    assert set(capacity.engine) == {"pgbench", "python"} and set(capacity.max_size) == {1, 4}
    assert rec["capacity_knee_pgbench"] in (1, 4)
    paths = run.read_frame("connection_paths")
    assert set(paths.path) == {
        "client pool -> server",
        "pgbouncer transaction",
        "pgbouncer session",
    }
    assert rec["pgb_txn_pgbench_60c_qps"] > 0 and rec["prepared_errors_threshold_none"] == 0
    assert (
        rec["prepared_errors_threshold_5"] > 0
    )  # PgBouncer 1.18 does not track prepared statements
    assert (run.path / "figures" / "03_connection_paths.png").exists()


def test_04_query_plans(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb04", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "04_query_plans.ipynb", run, {"dsn": server_dsn, "scale": "tiny"}
    )
    assert result.ok, result.error
    rec = result.recorded
    assert sorted(set(rec) - set(all_metrics())) == []  # every recorded key has a metric
    # the service's indexes help the wallet and packet lookups; sub-millisecond queries may jitter either way
    assert rec["faster"] >= 3 and rec["faster"] > rec["slower"]
    assert rec["plans_changed"] >= 3
    assert rec["biggest_speedup"] > 3
    # the numbers again from the plans the run saved
    diff = diff_plan_sets(
        load_plans(run.path / "plans" / "no_indexes"),
        load_plans(run.path / "plans" / "service_indexes"),
    )
    assert rec["queries"] == len(diff.diffs) >= rec["faster"] + rec["slower"]
    assert rec["plans_changed"] == len(diff.changed())
    ratio = {q: d.time_ratio for q, d in diff.diffs.items()}
    assert ratio[rec["biggest_change_query"]] == pytest.approx(min(ratio.values()), rel=1e-2)
    assert rec["biggest_speedup"] == pytest.approx(1 / ratio[rec["biggest_change_query"]], rel=1e-3)
    assert rec["worst_q_error"] == pytest.approx(diff.worst_estimates().q_error.max(), abs=0.05)
    assert (run.path / "plans" / "no_indexes" / "wallet_history.json").exists()
    assert (run.path / "figures" / "04_biggest_plan_change.png").exists()
    # the report embeds the diffs notebook 04 wrote, found by the same constant
    diffs = (run.path / DIFF_HTML).read_text()
    assert "wallet_history" in diffs and "random_page_cost_1_1" in diffs
    report = build_report(run, metrics=all_metrics()).read_text()
    assert "EXPLAIN diffs" in report and diffs in report


def test_05_timescale(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb05", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "05_timescale.ipynb",
        run,
        {
            "dsn": server_dsn,
            "scale": "tiny",
            "chunk_intervals": ["1 hour", "1 day"],
            "repetitions": 5,
        },
    )
    assert result.ok, result.error
    rec = result.recorded
    assert sorted(set(rec) - set(all_metrics())) == []  # every recorded key has a metric
    assert rec["chunks_scanned_bounded"] < rec["chunks_scanned_unbounded"] == rec["chunks_total"]
    assert rec["rollup_matches_raw"] is True
    layouts = run.read_frame("ts_layouts").set_index("layout")
    assert rec["most_chunks_layout"] == layouts.partitions.idxmax()
    assert rec["chunks_total"] == layouts.partitions.max() > 1
    q = run.read_frame("ts_layout_queries").set_index(["layout", "query"])
    many = rec["most_chunks_layout"]
    assert rec["chunks_scanned_bounded"] == q.partitions_scanned[many, "point_lookup_time_bounded"]
    assert rec["point_lookup_ratio_many_chunks_vs_plain"] == pytest.approx(
        q.p50_ms[many, "point_lookup"] / q.p50_ms["plain", "point_lookup"]
    )
    retention = run.read_frame("ts_retention").set_index("method")
    assert rec["retention_ms"] == retention.elapsed_ms.to_dict()
    assert rec["retention_wal_bytes"] == retention.wal_bytes.to_dict()
    assert set(rec["refresh_ms"]) == set(run.read_frame("ts_rollups").method)
    assert (run.path / "figures" / "05_layouts.png").exists()
    # the edition decides: continuous aggregates measured exactly when compression is available
    assert rec["caggs_available"] == rec["compression"].startswith("available")
    # the edition the test server was started with (tests/conftest.py)
    if PRIMARY_EDITION == "community":
        assert (
            rec["caggs_available"] is True and rec["compression"] == "available (Community edition)"
        )
    else:
        assert (
            rec["caggs_available"] is False and "unavailable on this server" in rec["compression"]
        )


def test_06_maintenance(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb06", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "06_maintenance.ipynb",
        run,
        {"dsn": server_dsn, "scale": "tiny", "cron_wait_s": 75},
    )
    assert result.ok, result.error
    rec = result.recorded
    assert sorted(set(rec) - set(all_metrics())) == []  # every recorded key has a metric
    cron = run.read_frame("maint_cron_runs")
    # every demo job ran once under pg_cron and succeeded, the hourly_packet_stats refresh included:
    # REFRESH MATERIALIZED VIEW where it is one, refresh_continuous_aggregate where it is a cagg
    assert cron.status.tolist() == ["succeeded"] * len(cron), cron.to_string()
    assert rec["cron_jobs_seen"] == len(cron) == 4
    with psycopg.connect(with_database(server_dsn, "ibcbench_tiny_s42")) as conn:
        matview = conn.execute(
            "SELECT count(*) FROM pg_matviews WHERE matviewname = 'hourly_packet_stats'"
        ).fetchone()
    hourly = cron.set_index("jobname").command["ibcbench-demo-refresh-hourly-packet-stats"]
    assert hourly.startswith(
        "REFRESH MATERIALIZED VIEW" if matview == (1,) else "CALL refresh_continuous_aggregate"
    )
    # the schema's jobs in the server's cron database, the demo copies not among them
    assert rec["cron_jobs_scheduled"] == len(scheduled_jobs(server_dsn))
    assert rec["cron_job_max_ms"] == pd.to_numeric(cron.duration_ms, errors="coerce").max()
    assert rec["leaf_density_before"] < rec["leaf_density_after"]
    assert rec["index_bytes_after"] < rec["index_bytes_before"]
    stages = run.read_frame("maint_bloat").set_index("stage")
    assert rec["leaf_density_after"] == stages.leaf_density_pct["after REINDEX CONCURRENTLY"]
    assert rec["index_bytes_before"] == stages.index_bytes["after deleting 70% + VACUUM"]
    assert rec["lookup_p50_ms_before"] == stages.p50_ms["after deleting 70% + VACUUM"]
    assert rec["bloat_detected"] is True and rec["health_scores"] == 22
    assert (run.path / "figures" / "06_network_health.png").exists()
    assert rec["incidents_planted"] == 4 and rec["monitor_long_running_queries_hits"] == 1
    assert rec["health_worst_chain"] == "secret-4"  # the halted chain of the tiny dataset


def test_08_faults_runs_the_suite_and_records_its_numbers(tmp_path: Path) -> None:
    run = new_run("nb08", root=tmp_path / "runs")
    result = run_notebook(
        notebooks_dir() / "08_faults.ipynb", run, {"scale": "tiny", "only": ["safety"]}
    )
    assert result.ok, result.error
    table = run.read_frame("faults")
    assert set(table.group) == {"safety"} and len(table) > 0
    assert result.recorded["faults_injected"] == int((~table.bad_input).sum())
    assert result.recorded["faults_survived"] == int(
        ((table.verdict == "survived") & ~table.bad_input).sum()
    )
    assert result.recorded["faults_rows_lost"] == int(table.rows_lost.sum())
    page = build_report(run, metrics=all_metrics()).read_text()
    assert "faults survived" in page and "result table faults" in page
