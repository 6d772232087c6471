"""The runners on the real server, and pgbench script generation and log parsing without it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibcbench.bench.runner import (
    parse_pgbench_log,
    pgbench_scripts,
    pgbench_value,
    run_pgbench,
    run_python,
    summarize,
)
from ibcbench.bench.workload import Workload, WorkloadQuery, default_workload


@pytest.mark.parametrize(
    ("value", "text"),
    [(5, "5"), ("it's", "it's"), (dt.date(2026, 1, 2), "2026-01-02"), (None, None), (True, "true"),
     (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "2026-01-01T00:00:00+00:00"), (np.int64(7), "7")],
)  # fmt: skip
def test_pgbench_values(value: object, text: str | None) -> None:
    assert pgbench_value(value) == text


def test_pgbench_scripts_bind_parameters_and_roll_back_writes() -> None:
    wl = default_workload().subset(["packet_by_channel_sequence", "network_stats_upsert"])
    params = {"packet_by_channel_sequence": [("osmosis-1", "channel-0", 5), ("noble-1", "channel-1", 6)],
              "network_stats_upsert": [("osmosis-1", dt.date(2026, 1, 2), 10, None)]}  # fmt: skip
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


def test_pgbench_log_parsing(tmp_path: Path) -> None:
    log = tmp_path / "log.1"
    log.write_text(
        "0 1 250 0 1700000000 000100\n0 2 1500 1 1700000000 002000\n1 1 failed 0 1700000001 000000\n"
    )
    frame = parse_pgbench_log(log, ["a", "b"])
    assert frame.to_dict("list") == {
        "query": ["a", "b", "a"],
        "latency_ms": [0.25, 1.5, pytest.approx(np.nan, nan_ok=True)],
        "ok": [True, True, False],
    }
    assert frame.attrs["last_epoch_us"] == 1_700_000_001_000_000
    later = parse_pgbench_log(log, ["a", "b"], measure_from_epoch_us=1_700_000_000_001_000)
    assert later["query"].tolist() == ["b", "a"]  # the warm-up transaction is left out


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
    result = run_python(loaded_dsn, wl, clients=2, duration_s=1.0, warmup_s=0.3)
    s = result.summary.set_index("query")
    assert s.loc["ALL", "count"] > 50 and s.loc["ALL", "errors"] == 0
    assert (
        (s.p50_ms <= s.p95_ms).all()
        and (s.p95_ms <= s.p99_ms).all()
        and (s.p99_ms <= s.max_ms).all()
    )
    assert 0 < result.client_cpu_pct < 200
    # the round-trip floor: SELECT 1 through the same pool and threads, faster than the workload
    assert result.client_floor_qps is not None and result.client_floor_qps > 0
    assert result.client_floor_share == pytest.approx(
        s.loc["ALL", "throughput_qps"] / result.client_floor_qps, abs=0.001
    )
    assert result.client_bound == (result.client_cpu_pct >= 70 or result.client_floor_share >= 0.5)
    assert result.manifest["writes"] == "in rolled-back transactions"


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
