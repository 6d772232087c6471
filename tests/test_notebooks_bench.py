"""Notebooks 02 and 03 at tiny scale under papermill, asserting on what they record."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibcbench.results.runs import new_run
from ibcbench.suite.notebook import notebooks_dir, run_notebook

pytestmark = [pytest.mark.db, pytest.mark.notebook]


def test_02_index_strategies(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb02", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "02_index_strategies.ipynb", run,
        {"dsn": server_dsn, "scale": "tiny", "strategies": ["none", "seed", "covering"], "repetitions": 30},
    )  # fmt: skip
    assert result.ok, result.error
    rec = result.recorded
    assert rec["wallet_history_speedup"] > 3  # the seed's wallet index beats a scan
    assert rec["ingest_rows_per_s"]["none"] > rec["ingest_rows_per_s"]["seed"]
    assert (run.path / "results" / "index_latency.parquet").exists()
    assert (run.path / "figures" / "02_latency_by_strategy.png").exists()


def test_03_pool_settings(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb03", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "03_pool_settings.ipynb", run,
        {"dsn": server_dsn, "scale": "tiny", "max_sizes": [1, 4], "clients": [1, 4], "duration_s": 0.5},
    )  # fmt: skip
    assert result.ok, result.error
    rec = result.recorded
    assert rec["errors"] == 0
    assert rec["knee_max_size"] in (1, 4)
    assert rec["max_wait_ms_per_request"] > 0  # 4 threads on a pool of 1 must wait
    assert (run.path / "results" / "pool_sweep.parquet").exists()


def test_04_query_plans(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb04", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "04_query_plans.ipynb", run, {"dsn": server_dsn, "scale": "tiny"}
    )
    assert result.ok, result.error
    rec = result.recorded
    # the seed's indexes help the wallet and packet lookups; sub-millisecond queries may jitter either way
    assert rec["faster"] >= 3 and rec["faster"] > rec["slower"]
    assert rec["plans_changed"] >= 3
    assert rec["biggest_speedup"] > 3
    assert (run.path / "plans" / "no_indexes" / "wallet_history.json").exists()
    assert (run.path / "plans" / "diff.html").exists()


def test_05_timescale(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb05", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "05_timescale.ipynb", run,
        {"dsn": server_dsn, "scale": "tiny", "chunk_intervals": ["1 hour", "1 day"], "repetitions": 5},
    )  # fmt: skip
    assert result.ok, result.error
    rec = result.recorded
    assert rec["chunks_scanned_bounded"] < rec["chunks_scanned_unbounded"] == rec["chunks_total"]
    assert rec["rollup_matches_raw"] is True
    assert rec["caggs_available"] is False and "unavailable on this server" in rec["compression"]


def test_06_maintenance(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb06", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "06_maintenance.ipynb",
        run,
        {"dsn": server_dsn, "scale": "tiny", "cron_wait_s": 75},
    )
    assert result.ok, result.error
    rec = result.recorded
    assert rec["cron_jobs_seen"] == 4  # every demo job ran once under pg_cron
    assert rec["leaf_density_before"] < rec["leaf_density_after"]
    assert rec["index_bytes_after"] < rec["index_bytes_before"]
    assert rec["bloat_detected"] is True and rec["health_scores"] == 22
    assert rec["incidents_planted"] == 4 and rec["monitor_long_running_queries_hits"] == 1
    assert rec["health_worst_chain"] == "secret-4"  # the halted chain of the tiny dataset
