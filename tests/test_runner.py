"""The runners on the real server, and pgbench script generation and log parsing without it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import PoolTimeout

from ibcbench.bench.workload import Workload, WorkloadQuery, default_workload
from ibcbench.bench.workload.pgbench import (
    _read_pgbench_log,
    measured_part,
    pgbench_aborted,
    pgbench_connection,
    pgbench_scripts,
    pgbench_value,
    run_pgbench,
)
from ibcbench.bench.workload.python import run_python
from ibcbench.bench.workload.summary import longest_gap_s, summarize
from ibcbench.bench.workload.tries import retryable, try_request, window_pool_stats
from ibcbench.errors import BenchmarkError
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


# ---- a lost connection: retries, errors, outage, no client_bound claim ------------------------------
def _terminate_when_busy(
    dsn: str, application: str, at_least: int, *, like: str = "%"
) -> tuple[threading.Thread, list[int]]:
    """A thread that waits until ``at_least`` backends of ``application`` have run a query matching
    ``like``, then terminates them all once (the pids it ended are in the list)."""
    ended: list[int] = []
    dbname = conninfo_to_dict(dsn)["dbname"]

    def terminate() -> None:
        deadline = time.monotonic() + 30
        with psycopg.connect(dsn, autocommit=True) as admin:
            while time.monotonic() < deadline:
                rows = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s"
                    " AND pid <> pg_backend_pid() AND query LIKE %s",
                    (dbname, application, like),
                ).fetchall()
                if len(rows) >= at_least:
                    for (pid,) in rows:
                        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                        ended.append(pid)
                    return
                time.sleep(0.02)

    thread = threading.Thread(target=terminate, daemon=True)
    thread.start()
    return thread, ended


@pytest.mark.db
@pytest.mark.parametrize("max_tries", [3, 1])
def test_terminated_backends_are_retried_or_counted_and_never_called_client_bound(
    loaded_dsn: str, max_tries: int
) -> None:
    wl, params = _sleeps(0.02)
    cfg = PoolConfig(
        min_size=2,
        max_size=2,
        health_check_period_s=None,
        slow_query_ms=None,
        application_name="ibcbench-terminated",
    )
    killer, ended = _terminate_when_busy(loaded_dsn, "ibcbench-terminated", 2, like="%pg_sleep%")
    result = run_python(
        loaded_dsn,
        wl,
        clients=2,
        duration_s=1.5,
        warmup_s=0.0,
        pool_config=cfg,
        params=params,
        max_tries=max_tries,
    )
    killer.join()
    assert len(ended) == 2
    s = result.summary.set_index("query").loc["ALL"]
    # each terminated connection fails the next request sent on it (at least one of them)
    if max_tries == 3:  # tried again on a new connection, and succeeded
        assert result.retries >= 1 and result.errors == 0
        assert result.latencies.tries.max() >= 2
    else:  # no retries: those requests failed
        assert result.retries == 0 and result.errors >= 1
        assert (result.latencies.tries == 1).all()
    assert (s["retries"], s["errors"]) == (result.retries, result.errors)
    assert s["count"] > 10  # the run went on after the loss
    # the round-trip floor of a disturbed run means nothing: not judged, not measured
    assert result.client_bound is None and result.client_floor_qps is None
    assert result.disturbed and result.trouble() is not None
    m = result.manifest
    assert (m["errors"], m["retries"], m["max_tries"]) == (result.errors, result.retries, max_tries)
    assert m["client_bound"].startswith("not judged")
    assert 0 < m["unavailable_s"] == result.unavailable_s <= 1.5


@pytest.mark.db
def test_an_undisturbed_run_records_no_trouble(loaded_dsn: str) -> None:
    wl, params = _sleeps(0.001)
    result = run_python(loaded_dsn, wl, clients=1, duration_s=0.5, warmup_s=0.1, params=params)
    assert (result.errors, result.retries, result.trouble()) == (0, 0, None)
    assert result.client_bound is not None and result.manifest["client_bound"] is not None
    assert (result.latencies.tries == 1).all()
    assert result.unavailable_s is not None and result.unavailable_s < 0.5


@pytest.mark.db
def test_a_statement_timeout_is_an_error_not_retried(loaded_dsn: str) -> None:
    wl, params = _sleeps(0.5)

    def short(conn: psycopg.Connection) -> None:
        conn.execute("SET statement_timeout = '50ms'")

    from ibcbench.toolkit.pool import create_pool

    # QueryCanceled would only time out again: one try, counted as an error
    with create_pool(PoolConfig(min_size=1, max_size=1), loaded_dsn, configure=short) as pool:
        ok, tries = try_request(
            pool, sql.SQL(wl.queries[0].sql), params["sleep"][0], False, 3, 1e12
        )
    assert not ok and tries.count == 1


@pytest.mark.parametrize(
    ("ends", "window", "gap"),
    [
        ([0.1, 0.2, 0.9], 1.0, 0.7),
        ([], 2.0, 2.0),
        ([0.5], 1.0, 0.5),
        ([0.2, 0.4, 1.5], 1.0, 0.6),  # an end after the window counts at its end
    ],
)
def test_longest_gap_without_a_success(ends: list[float], window: float, gap: float) -> None:
    assert longest_gap_s(ends, window) == pytest.approx(gap)


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.errors.AdminShutdown(), True),
        (psycopg.errors.SerializationFailure(), True),
        (psycopg.errors.DeadlockDetected(), True),
        (PoolTimeout("couldn't get a connection after 30.00 sec"), True),
        (psycopg.errors.QueryCanceled(), False),
        (psycopg.errors.DivisionByZero(), False),
        (psycopg.errors.UndefinedTable(), False),
    ],
)
def test_what_is_retried(exc: Exception, retry: bool) -> None:
    assert retryable(exc) is retry


def test_summary_counts_retries_from_the_tries_column() -> None:
    lat = pd.DataFrame(
        {
            "query": ["a", "a", "b", "b"],
            "latency_ms": [1.0, 5.0, 2.0, 9.0],
            "ok": [True, True, True, False],
            "tries": [1, 3, 2, 3],
        }
    )
    s = summarize(lat, engine="python", clients=1, duration_s=1.0).set_index("query")
    assert s.loc["a", "retries"] == 2 and s.loc["b", "retries"] == 3
    assert s.loc["ALL", "retries"] == 5 and s.loc["ALL", "errors"] == 1


# ---- pgbench: aborted clients, retries in the log --------------------------------------------------
PGBENCH_ABORTS = """\
FATAL:  terminating connection due to administrator command
pgbench: error: client 1 aborted in command 1 (SQL) of script 0; perhaps the backend died while processing
pgbench: error: client 3 script 0 aborted in command 1 query 0: FATAL:  terminating connection due to administrator command
pgbench: error: client 0 script 0 aborted in command 1 query 0: FATAL:  terminating connection due to administrator command
pgbench: error: client 2 aborted while establishing connection
pgbench: error: Run was aborted; the above results are incomplete.
"""


def test_pgbench_aborted_clients_are_read_from_its_stderr() -> None:
    assert pgbench_aborted(PGBENCH_ABORTS) == {
        1: "perhaps the backend died while processing",
        3: "FATAL: terminating connection due to administrator command",
        0: "FATAL: terminating connection due to administrator command",
        2: "while establishing connection",
    }


@pytest.mark.parametrize(
    ("line", "lag_ms", "tries"),
    [
        ("0 1 421 0 1796116961 324520 0", np.nan, 1),  # --max-tries 3: retries last
        ("0 2 766 0 1796116962 388623 125 2", 0.125, 3),  # --rate too: lag, then retries
        ("1 1 failed 0 1796116962 402516 2", np.nan, 3),
    ],
)
def test_pgbench_log_retries(tmp_path: Path, line: str, lag_ms: float, tries: int) -> None:
    log = tmp_path / "log.1"
    log.write_text(line + "\n")
    got = _read_pgbench_log(log, ["a"], retries=True).iloc[0]
    assert got.tries == tries
    assert np.isnan(got.lag_ms) if np.isnan(lag_ms) else got.lag_ms == lag_ms


@pytest.mark.db
def test_pgbench_clients_that_lose_their_connection_end_in_one_line(loaded_dsn: str) -> None:
    wl, params = _sleeps(0.01)
    killer, ended = _terminate_when_busy(loaded_dsn, "pgbench", 2, like="%pg_sleep%")
    with pytest.raises(BenchmarkError, match=r"^pgbench: 2 of 2 clients aborted \(.+\): the run"):
        run_pgbench(loaded_dsn, wl, clients=2, duration_s=3.0, warmup_s=0.0, params=params)
    killer.join()
    assert len(ended) == 2


# ---- bench workload: a disturbed run ---------------------------------------------------------------
@pytest.mark.db
def test_a_disturbed_workload_run_exits_1_in_one_line_and_its_folder_is_failed(
    server_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from ibcbench.cli import main
    from ibcbench.data.datasets import ensure_dataset
    from ibcbench.errors import RunError
    from ibcbench.results.runs import find_run

    dataset = ensure_dataset(server_dsn, scale="tiny", seed=42)
    capsys.readouterr()  # what building (or repairing) the dataset said is not the command's
    runs = tmp_path / "runs"
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(runs))
    # the runner's pool (application 'ibcbench') loses both connections once it is measuring
    killer, ended = _terminate_when_busy(dataset, "ibcbench", 2, like="%packet_flow%")
    args = ["bench", "workload", "--engine", "python", "--scale", "tiny", "--clients", "2"]
    args += ["--duration", "2", "--warmup", "0", "--queries", "packet_by_channel_sequence"]
    rc = main([*args, "--dsn", server_dsn])
    killer.join()
    out = capsys.readouterr()
    assert rc == 1 and len(ended) == 2
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert re.match(r"ibcbench: error: the run was disturbed: \d+ requests failed", lines[0])
    assert lines[0].endswith("is marked failed")
    assert "client_bound: not judged" in out.out and "is the limit" not in out.out
    (run,) = runs.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"].startswith("the run was disturbed")
    assert manifest["retries"] + manifest["errors"] >= 1 and manifest["unavailable_s"] > 0
    assert manifest["workload"]["retries"] == manifest["retries"]
    assert manifest["schema_version"] is not None  # the rest of the manifest is there too
    with pytest.raises(RunError, match="no complete run"):
        find_run("latest", root=runs)


# ---- secrets: pgbench's command line ----------------------------------------------------------
PGBENCH_PASSWORD = (
    "Pgb-S3cret Pw:9\\x"  # a space, a colon and a backslash: the password file escapes
)


def test_pgbench_gets_its_password_from_a_0600_file_not_its_arguments(tmp_path: Path) -> None:
    dsn = "postgresql://u:Pgb-S3cret%20Pw%3A9%5Cx@127.0.0.1:5/db?sslmode=disable"
    conninfo, env = pgbench_connection(dsn, tmp_path)
    assert "S3cret" not in conninfo and conninfo_to_dict(conninfo) == {
        "user": "u",
        "host": "127.0.0.1",
        "port": "5",
        "dbname": "db",
        "sslmode": "disable",
    }
    passfile = Path(env["PGPASSFILE"])
    assert passfile.parent == tmp_path and passfile.stat().st_mode & 0o777 == 0o600
    assert passfile.read_text() == "*:*:*:*:Pgb-S3cret Pw\\:9\\\\x\n"
    assert "PGPASSWORD" not in env
    plain, env = pgbench_connection("host=h dbname=d", tmp_path)  # no password: no file
    assert conninfo_to_dict(plain) == {"host": "h", "dbname": "d"} and "PGPASSFILE" not in env


@pytest.mark.db
def test_no_process_of_a_pgbench_run_shows_the_dsn_password(
    server_dsn: str, loaded_dsn: str
) -> None:
    from tests.procscan import CmdlineWatch, dbname_of, password_login, with_dbname

    with password_login(server_dsn, "t_runner_pw", PGBENCH_PASSWORD) as login:
        dsn = with_dbname(login, dbname_of(loaded_dsn))
        with psycopg.connect(dsn) as conn:  # the password is checked (scram), and right
            assert conn.execute("SELECT current_user").fetchone() == ("t_runner_pw",)
        wl = default_workload().subset(["packet_by_channel_sequence"])
        with CmdlineWatch(os.getpid(), [PGBENCH_PASSWORD, "S3cret"]) as watch:
            result = run_pgbench(dsn, wl, clients=1, duration_s=1, warmup_s=0)
    assert result.errors == 0 and len(result.latencies) > 0
    assert watch.ran("pgbench"), sorted(watch.seen)
    assert not watch.hits, "the password is on a command line"
