"""The runners on the real server, and pgbench script generation and log parsing without it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from ibcbench.bench.runner import (
    measured_part,
    pgbench_scripts,
    pgbench_value,
    run_pgbench,
    run_python,
    summarize,
    window_pool_stats,
)
from ibcbench.bench.workload import Workload, WorkloadQuery, default_workload
from ibcbench.toolkit.pool import PoolConfig


def _sleeps(seconds: float) -> tuple[Workload, dict[str, list[tuple]]]:
    """A query that takes ``seconds`` on the server, whatever the client."""
    wl = Workload("t", "1", (WorkloadQuery("sleep", "SELECT pg_sleep(%s)", "read", 1, "sleeps"),))
    return wl, {"sleep": [(seconds,)]}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5, "5"),
        ("it's", "it's"),
        (dt.date(2026, 1, 2), "2026-01-02"),
        (None, None),
        (True, "true"),
        (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "2026-01-01T00:00:00+00:00"),
        (np.int64(7), "7"),
    ],
)
def test_pgbench_values(value: object, text: str | None) -> None:
    assert pgbench_value(value) == text


def test_pgbench_scripts_bind_parameters_and_roll_back_writes() -> None:
    wl = default_workload().subset(["packet_by_channel_sequence", "network_stats_upsert"])
    params = {
        "packet_by_channel_sequence": [("osmosis-1", "channel-0", 5), ("noble-1", "channel-1", 6)],
        "network_stats_upsert": [("osmosis-1", dt.date(2026, 1, 2), 10, None)],
    }
    generated = pgbench_scripts(wl, params)
    scripts = generated.scripts
    assert [s[0] for s in scripts] == [
        "packet_by_channel_sequence",
        "packet_by_channel_sequence",
        "network_stats_upsert",
    ]
    assert scripts[1][1] == (
        "\\set ibcbench_tick 1\nSELECT id, status, sender, receiver, amount, denom, relayer, created_at, acknowledged_at"
        " FROM packet_flow WHERE source_chain = :p1_0 AND source_channel = :p1_1 AND sequence = :p1_2;\n"
    )
    assert generated.variables["p1_0"] == "noble-1" and generated.variables["p1_2"] == "6"
    assert generated.variables["p2_1"] == "2026-01-02" and "p2_3" not in generated.variables
    assert "NULL" in scripts[2][1] and ":p2_3" not in scripts[2][1]
    assert scripts[2][1].startswith(
        "\\set ibcbench_tick 1\nBEGIN;\nINSERT INTO network_stats"
    ) and scripts[2][1].endswith("ROLLBACK;\n")
    assert scripts[0][2] == pytest.approx(12.5)
    assert generated.define_args()[:2] == ["-D", "p0_0=osmosis-1"]


def test_the_warm_up_cut_keeps_the_last_seconds_of_a_pgbench_log(tmp_path: Path) -> None:
    from ibcbench.bench.runner import _read_pgbench_log

    # three transactions ending at 0.5 s, 2.2 s and 3.0 s; one failed at 2.6 s
    log = tmp_path / "log.1"
    log.write_text(
        "0 1 250 0 1700000000 500000\n0 2 1500 1 1700000002 200000\n"
        "1 1 failed 0 1700000002 600000\n1 2 400 0 1700000003 000000\n"
    )
    logged = _read_pgbench_log(log, ["a", "b"])
    kept = measured_part(logged, 1.0)  # the window: the last second, 2.0 s .. 3.0 s
    assert kept["query"].tolist() == ["b", "a", "a"] and kept.ok.tolist() == [True, False, True]
    assert kept.t_s.round(4).tolist() == [0.1985, 0.6, 0.9996]  # started 2.1985 s, 2.6 s, 2.9996 s
    assert len(measured_part(logged, None)) == 4 and measured_part(logged, None).t_s.min() == 0


def test_summary_percentiles_are_ordered() -> None:
    lat = pd.DataFrame(
        {
            "query": ["q"] * 100,
            "latency_ms": np.arange(1, 101, dtype=float),
            "ok": [True] * 99 + [False],
        }
    )
    s = summarize(lat, engine="python", clients=1, duration_s=2.0).set_index("query").loc["q"]
    assert (s["count"], s.errors, s.throughput_qps) == (99, 1, 49.5)
    assert s.p50_ms <= s.p95_ms <= s.p99_ms <= s.max_ms == 99.0


@pytest.mark.db
def test_python_runner_closed_loop(loaded_dsn: str) -> None:
    wl = default_workload().subset(
        ["wallet_history", "packet_by_channel_sequence", "packet_insert"]
    )
    with psycopg.connect(loaded_dsn) as conn:
        before = conn.execute("SELECT count(*) FROM packet_flow").fetchone()
    result = run_python(loaded_dsn, wl, clients=2, duration_s=1.0, warmup_s=0.3)
    s = result.summary.set_index("query")
    assert s.loc["ALL", "count"] > 50 and s.loc["ALL", "errors"] == 0
    assert set(s.index) == {"wallet_history", "packet_by_channel_sequence", "packet_insert", "ALL"}
    lat = result.latencies
    assert lat.t_s.between(0, 1.0).all() and lat.t_s.is_monotonic_increasing
    # a pool as large as the threads: no waiting, the time is the execution's
    assert (lat.wait_ms + lat.exec_ms <= lat.latency_ms + 1e-6).all()
    assert s.loc["ALL", "wait_p50_ms"] < 0.5 * s.loc["ALL", "exec_p50_ms"]
    assert result.manifest["writes"] == "in rolled-back transactions"
    assert s.loc["packet_insert", "count"] > 0
    with psycopg.connect(loaded_dsn) as conn:  # the inserts were rolled back
        assert conn.execute("SELECT count(*) FROM packet_flow").fetchone() == before


@pytest.mark.db
@pytest.mark.parametrize(
    ("query", "bound"), [("SELECT 1", True), ("SELECT pg_sleep(0.005)", False)]
)
def test_client_bound_is_said_of_an_empty_round_trip_only(
    loaded_dsn: str, query: str, bound: bool
) -> None:
    wl = Workload("t", "1", (WorkloadQuery("q", query, "read", 1, "x"),))
    result = run_python(loaded_dsn, wl, clients=2, duration_s=1.0, warmup_s=0.2, params={"q": [()]})
    assert result.client_bound is bound
    assert (result.client_floor_share >= 0.5) is bound  # type: ignore[operator]


@pytest.mark.db
def test_pool_stats_cover_the_measured_window_and_waits_are_split(loaded_dsn: str) -> None:
    wl, params = _sleeps(0.005)
    # a pool that grows from 1 during the warm-up, then 4 threads on 2 connections: they wait
    cfg = PoolConfig(min_size=1, max_size=2, health_check_period_s=None, slow_query_ms=None)
    result = run_python(
        loaded_dsn, wl, clients=4, duration_s=1.0, warmup_s=1.0, pool_config=cfg, params=params
    )
    stats, s = result.pool_stats, result.summary.set_index("query").loc["ALL"]
    assert stats is not None and stats["size"] == 2
    # the window's requests, not the warm-up's too (those would double the count)
    assert abs(stats["requests"] - s["count"]) <= 8
    assert stats["connections_opened"] == 0  # the pool grew before the window
    # each request waits for about one other on its connection: ~5 ms waiting, ~5 ms executing
    assert 2.0 < s["wait_p50_ms"] < 4 * s["exec_p50_ms"] and s["exec_p50_ms"] >= 5.0
    assert s["wait_p99_ms"] >= s["wait_p95_ms"] >= s["wait_p50_ms"]
    assert s["p50_ms"] >= s["wait_p50_ms"] + 5.0


def test_window_pool_stats_subtract_counters_only() -> None:
    start = {"requests": 10, "wait_ms": 50.0, "requests_queued": 5, "size": 1, "mean_wait_ms": 10.0}
    end = {"requests": 30, "wait_ms": 70.0, "requests_queued": 9, "size": 4, "mean_wait_ms": 7.8}
    assert window_pool_stats(start, end) == {
        "requests": 20,
        "wait_ms": 20.0,
        "requests_queued": 4,
        "size": 4,
        "mean_wait_ms": 5.0,
    }


@pytest.mark.db
def test_errors_are_counted_not_fatal(loaded_dsn: str) -> None:
    bad = Workload(
        "t", "1", (WorkloadQuery("broken", "SELECT 1 / (%s - %s)", "read", 1, "division by zero"),)
    )
    result = run_python(
        loaded_dsn, bad, clients=1, duration_s=0.5, warmup_s=0.0, params={"broken": [(1, 1)]}
    )
    s = result.summary.set_index("query")
    assert s.loc["broken", "errors"] > 0 and s.loc["broken", "count"] == 0


@pytest.mark.db
def test_open_loop_keeps_its_rate(loaded_dsn: str) -> None:
    wl = default_workload().subset(["packet_by_channel_sequence"])
    result = run_python(loaded_dsn, wl, clients=2, duration_s=2.0, warmup_s=0.2, rate_qps=100)
    qps = result.summary.set_index("query").loc["ALL", "throughput_qps"]
    assert 80 <= qps <= 110
    assert result.client_floor_qps is None  # an open loop is not limited by the client's floor
    ol = result.open_loop
    # within capacity: at most the request each thread had just been due to send is left at the end
    assert ol is not None and ol["issued"] == ol["scheduled"] and ol["backlog_at_stop"] <= 2
    assert ol["drain_s"] < 0.2


@pytest.mark.db
def test_open_loop_over_capacity_issues_its_backlog(loaded_dsn: str) -> None:
    # one connection, 20 ms a query: 50/s at most, asked for 100/s during 1 s
    wl, params = _sleeps(0.02)
    result = run_python(
        loaded_dsn, wl, clients=1, duration_s=1.0, warmup_s=0.0, rate_qps=100, params=params
    )
    ol = result.open_loop
    assert ol is not None and 99 <= ol["scheduled"] <= 101
    assert ol["issued"] == ol["scheduled"] == result.summary.set_index("query").loc["ALL", "count"]
    assert ol["backlog_at_stop"] >= 40 and ol["late"] >= 90 and ol["drain_s"] > 0.8
    s = result.summary.set_index("query").loc["ALL"]
    # the last request waited ~1 s for its turn: p99 holds the queueing, not only the 20 ms
    assert s.p99_ms > 800 and s.lag_p99_ms > 700 and s.exec_p50_ms < 100
    assert 35 <= s.throughput_qps <= 55  # achieved, not offered


@pytest.mark.db
def test_an_undrained_backlog_is_counted_not_hidden(loaded_dsn: str) -> None:
    wl, params = _sleeps(0.05)
    result = run_python(
        loaded_dsn,
        wl,
        clients=1,
        duration_s=1.0,
        warmup_s=0.0,
        rate_qps=100,
        params=params,
        drain_timeout_s=0.2,
    )
    ol = result.open_loop
    assert ol is not None and ol["not_issued"] > 50
    assert ol["issued"] + ol["not_issued"] == ol["scheduled"] and 99 <= ol["scheduled"] <= 101


@pytest.mark.db
def test_pgbench_engine_gives_the_same_frames(loaded_dsn: str) -> None:
    wl = default_workload().subset(
        ["wallet_history", "packet_by_channel_sequence", "network_stats_upsert"]
    )
    result = run_pgbench(loaded_dsn, wl, clients=2, duration_s=1.0, warmup_s=1.0)
    s = result.summary.set_index("query")
    assert set(s.index) == {
        "wallet_history",
        "packet_by_channel_sequence",
        "network_stats_upsert",
        "ALL",
    }
    assert s.loc["ALL", "count"] > 100 and s.loc["ALL", "errors"] == 0
    assert (result.latencies.latency_ms > 0).all()
    assert list(result.summary.columns) == list(
        summarize(result.latencies, engine="x", clients=1, duration_s=1).columns
    )


def test_a_run_that_logged_no_transaction_summarizes_as_zero_throughput() -> None:
    # what an empty pgbench log becomes (a run whose clients were still connecting when -T ended)
    empty = pd.DataFrame(columns=["query", "latency_ms", "ok", "t_s"])
    empty["query"] = pd.Categorical(empty["query"], categories=["a", "b"])
    summary = summarize(empty, engine="pgbench", clients=200, duration_s=1).set_index("query")
    assert summary.loc["ALL", "count"] == 0 and summary.loc["ALL", "throughput_qps"] == 0
    assert np.isnan(summary.loc["ALL", "p50_ms"])
