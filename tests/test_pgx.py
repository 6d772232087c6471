"""The pgx runner: its pool mapping and job without a server, its records against the Python
runner's on the real server."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from ibcbench.bench.workload import Workload, WorkloadQuery, default_workload, pgx
from ibcbench.bench.workload.clients import Settings
from ibcbench.bench.workload.engines import run_workload
from ibcbench.bench.workload.pgbench import pgbench_connection
from ibcbench.bench.workload.pgx import (
    dollar_placeholders,
    find_pgx_runner,
    pgx_job,
    pgx_unavailable,
    pgxpool_settings,
    pool_config_from_service,
    run_pgx,
)
from ibcbench.bench.workload.python import run_python
from ibcbench.errors import BenchmarkError
from ibcbench.toolkit.pool import PoolConfig

needs_runner = pytest.mark.skipif(
    pgx_unavailable() is not None, reason=f"pgx runner: {pgx_unavailable()}"
)

#: the service's pool (Go): PoolConfig{MaxConnections: 25, MinConnections: 5, MaxConnLifetime:
#: time.Hour, MaxConnIdleTime: 30 * time.Minute, HealthCheckPeriod: time.Minute}
SERVICE_POOL = {
    "MaxConnections": 25,
    "MinConnections": 5,
    "MaxConnLifetime": 3600.0,
    "MaxConnIdleTime": 1800.0,
    "HealthCheckPeriod": 60.0,
}


@pytest.mark.parametrize(
    ("service", "field", "job_key"),
    [
        ("MaxConnections", "max_size", "max_conns"),
        ("MinConnections", "min_size", "min_conns"),
        ("MaxConnLifetime", "max_lifetime_s", "max_conn_lifetime_s"),
        ("MaxConnIdleTime", "max_idle_s", "max_conn_idle_time_s"),
        ("HealthCheckPeriod", "health_check_period_s", "health_check_period_s"),
    ],
)
def test_the_service_pool_maps_onto_pool_config_and_pgxpool(
    service: str, field: str, job_key: str
) -> None:
    cfg = pool_config_from_service(**SERVICE_POOL)
    assert getattr(cfg, field) == SERVICE_POOL[service]
    assert pgxpool_settings(cfg)[job_key] == SERVICE_POOL[service]
    # the seed's defaults are the service's pool
    assert getattr(PoolConfig(), field) == SERVICE_POOL[service]


def test_an_unknown_service_setting_is_refused() -> None:
    with pytest.raises(BenchmarkError, match="unknown pool settings MaxConns: use MaxConnections"):
        pool_config_from_service(MaxConns=3)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("SELECT %s", "SELECT $1"),
        ("a = %s AND b = %s", "a = $1 AND b = $2"),
        ("x LIKE 'a%%' AND y = %s", "x LIKE 'a%' AND y = $1"),
        ("SELECT 1", "SELECT 1"),
    ],
)
def test_placeholders_become_numbered(text: str, want: str) -> None:
    assert dollar_placeholders(text) == want


def test_the_job_holds_no_password_and_the_python_runners_draws(tmp_path: Path) -> None:
    wl = default_workload().subset(["user_statistics", "network_stats_range"])
    params = {"user_statistics": [("w1",), ("w2",)], "network_stats_range": [("c", "d1", "d2")]}
    run = Settings(2, 1.0, 0.0, None, 42, 3, 10.0)
    conninfo, env = pgbench_connection("postgresql://u:s3cret-pw@127.0.0.1:1/x", tmp_path)
    job = pgx_job(
        conninfo,
        wl,
        params,
        run,
        cfg=PoolConfig(),
        pool_timeout_s=5.0,
        statement_cache=512,
        out=tmp_path / "r.jsonl",
    )
    assert "s3cret-pw" not in json.dumps(job)  # it goes in a 0600 file named by PGPASSFILE
    assert Path(env["PGPASSFILE"]).stat().st_mode & 0o777 == 0o600
    assert job["queries"][0]["sql"] == "SELECT * FROM mv_user_statistics WHERE wallet_address = $1"
    assert len(job["draws"]) == 2 and job["draws"][0] != job["draws"][1]
    assert all(
        0 <= s < 2
        for s, p in zip(job["draws"][0]["slots"], job["draws"][0]["picks"], strict=True)
        if p == 0
    )
    assert job["pool"]["max_conns"] == 25 and job["floor_s"] > 0


def test_a_missing_runner_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgx, "RUNNER_SOURCE", tmp_path)
    monkeypatch.delenv("IBCBENCH_PGX_RUNNER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        BenchmarkError, match=r"^Go is not installed: run scripts/install-system.sh"
    ):
        find_pgx_runner()
    assert "install-system.sh" in (pgx_unavailable() or "")
    with pytest.raises(BenchmarkError, match="install-system.sh"):
        run_workload(None, default_workload(), engine="pgx")
    monkeypatch.setenv("IBCBENCH_PGX_RUNNER", str(tmp_path / "none"))
    with pytest.raises(BenchmarkError, match=r"^IBCBENCH_PGX_RUNNER=.* is not an executable"):
        find_pgx_runner()


def _per_client_counts(latencies, clients: int) -> dict[int, list[str]]:  # type: ignore[no-untyped-def]
    return {c: list(latencies.loc[latencies.client == c, "query"]) for c in range(clients)}


@needs_runner
def test_pgx_runs_the_python_runners_requests_client_for_client(loaded_dsn: str) -> None:
    wl = default_workload()
    with psycopg.connect(loaded_dsn) as conn:
        from ibcbench.bench.workload import sample_parameters

        params = sample_parameters(conn, wl, seed=7)
        before = conn.execute("SELECT count(*) FROM packet_flow").fetchone()
    kwargs = dict(clients=2, duration_s=1.0, warmup_s=0.0, params=params, seed=7)
    py = run_python(loaded_dsn, wl, **kwargs)  # type: ignore[arg-type]
    gx = run_pgx(loaded_dsn, wl, **kwargs)  # type: ignore[arg-type]
    assert gx.engine == "pgx" and gx.errors == 0 and gx.retries == 0
    assert list(gx.latencies.columns) == list(py.latencies.columns)
    assert list(gx.summary.columns) == list(py.summary.columns)
    assert (gx.latencies.latency_ms > 0).all() and (gx.latencies.exec_ms > 0).all()
    assert (gx.latencies.wait_ms >= 0).all()
    # the same draws: each client's first requests are the same queries, in the same order
    py_seq, gx_seq = _per_client_counts(py.latencies, 2), _per_client_counts(gx.latencies, 2)
    for c in range(2):
        n = min(len(py_seq[c]), len(gx_seq[c]))
        assert n > 20
        assert py_seq[c][:n] == gx_seq[c][:n]
    assert gx.manifest["engine"] == "pgx" and gx.manifest["statement_cache"].startswith("prepare")
    assert gx.client_floor_qps and gx.client_floor_qps > 0
    with psycopg.connect(loaded_dsn) as conn:  # the writes were rolled back
        assert conn.execute("SELECT count(*) FROM packet_flow").fetchone() == before


@needs_runner
def test_pgx_open_loop_counts_latency_from_the_scheduled_start(loaded_dsn: str) -> None:
    wl = Workload("t", "1", (WorkloadQuery("sleep", "SELECT pg_sleep(%s)", "read", 1, "sleeps"),))
    # one client at 100/s of a 20 ms query: a backlog builds, and its wait is in the latency
    result = run_pgx(
        loaded_dsn,
        wl,
        clients=1,
        duration_s=1.0,
        warmup_s=0.0,
        rate_qps=100,
        params={"sleep": [(0.02,)]},
    )
    lat = result.latencies
    assert result.errors == 0 and len(lat) > 10
    assert (lat.lag_ms >= 0).all() and (lat.latency_ms >= lat.exec_ms).all()
    assert lat.lag_ms.iloc[-1] > 200  # the last ones waited behind the backlog
    # the latency is the whole wait from the scheduled start: lag + pool wait + execution
    assert ((lat.latency_ms - (lat.lag_ms + lat.wait_ms + lat.exec_ms)).abs() < 0.5).all()
    assert lat.latency_ms.iloc[-1] > 200
    assert (lat.t_s.diff().dropna().round(6) == 0.01).all()  # on its schedule, 10 ms apart
    assert result.open_loop is not None and result.open_loop["issued"] == len(lat)


@needs_runner
@pytest.mark.parametrize("cache", [512, 0])
def test_pgx_runs_every_query_with_and_without_the_statement_cache(
    loaded_dsn: str, cache: int
) -> None:
    result = run_pgx(
        loaded_dsn,
        default_workload(),
        clients=2,
        duration_s=0.5,
        warmup_s=0.2,
        statement_cache=cache,
    )
    by_query = result.summary.set_index("query")
    assert by_query.loc["ALL", "errors"] == 0
    assert (by_query["count"] > 0).sum() >= 8
    want = "simple protocol" if cache == 0 else "prepare, capacity 512"
    assert result.manifest["statement_cache"] == want


@needs_runner
def test_pgx_errors_are_counted_not_fatal(loaded_dsn: str) -> None:
    bad = Workload("t", "1", (WorkloadQuery("broken", "SELECT %s / %s - 1/0", "read", 1, "x"),))
    result = run_pgx(
        loaded_dsn, bad, clients=1, duration_s=0.3, warmup_s=0.0, params={"broken": [(1, 1)]}
    )
    assert result.errors > 0 and result.retries == 0 and result.disturbed
    assert result.client_bound is None


@needs_runner
def test_the_runner_that_cannot_reach_its_server_says_so_in_one_line(tmp_path: Path) -> None:
    wl = default_workload().subset(["user_statistics"])
    job = pgx_job(
        "host=127.0.0.1 port=1 dbname=x user=nobody",
        wl,
        {"user_statistics": [("w",)]},
        Settings(1, 0.2, 0.0, None, 42, 3, 10.0),
        cfg=PoolConfig(min_size=1, max_size=1),
        pool_timeout_s=2.0,
        statement_cache=512,
        out=tmp_path / "records.jsonl",
    )
    with pytest.raises(BenchmarkError, match=r"^pgx runner: the pool could not open") as info:
        pgx._run_runner(find_pgx_runner(), job, {}, 30.0)
    assert "\n" not in str(info.value) and "nothing was recorded" in str(info.value)
