"""The workload: every query runs on sampled parameters that exist in the data."""

from __future__ import annotations

import psycopg
import pytest

from ibcbench.bench.workload import default_workload, sample_parameters, workload_queries
from ibcbench.errors import BenchmarkError

pytestmark = pytest.mark.db


def test_workload_is_named_versioned_and_complete() -> None:
    wl = default_workload()
    assert (wl.name, wl.version) == ("ibc-seed", "1")
    assert {
        "wallet_history",
        "wallet_by_status",
        "stuck_packets_24h",
        "packet_by_channel_sequence",
        "network_stats_range",
        "relayer_leaderboard",
        "user_statistics",
        "hourly_packet_stats",
        "packet_insert",
        "packet_status_update",
        "network_stats_upsert",
    } == set(wl.names)
    with pytest.raises(BenchmarkError, match="has no query 'nope'"):
        wl.query("nope")
    with pytest.raises(BenchmarkError, match="unknown queries in the mix: nope"):
        wl.with_weights({"nope": 1})


def test_sampled_parameters_exist_in_the_data(loaded_dsn: str) -> None:
    wl = default_workload()
    with psycopg.connect(loaded_dsn) as conn:
        params = sample_parameters(conn, wl, n=30, seed=1)
        assert params == sample_parameters(conn, wl, n=30, seed=1)
        for wallet, _ in [(p[0], None) for p in params["wallet_history"][:10]]:
            assert (
                conn.execute(
                    "SELECT count(*) FROM clearing_operations WHERE wallet_address = %s", (wallet,)
                ).fetchone()[0]
                > 0
            )
        for chain, channel, seq in params["packet_by_channel_sequence"][:10]:
            assert conn.execute(
                "SELECT count(*) FROM packet_flow WHERE source_chain = %s AND source_channel = %s AND sequence = %s",
                (chain, channel, seq),
            ).fetchone() == (1,)


def test_every_query_returns_rows_and_writes_leave_no_trace(loaded_dsn: str) -> None:
    with psycopg.connect(loaded_dsn) as conn:
        before = conn.execute(
            "SELECT count(*), sum(total_packets) FROM packet_flow, (SELECT sum(total_packets) total_packets FROM network_stats) n"
        ).fetchone()
        for name, query, params in workload_queries(conn):
            wl_query = default_workload().query(name)
            if wl_query.kind == "write":
                with conn.transaction(force_rollback=True):
                    cur = conn.execute(query, params)
                    assert cur.rowcount == 1, name
            else:
                assert conn.execute(query, params).fetchall(), name
        after = conn.execute(
            "SELECT count(*), sum(total_packets) FROM packet_flow, (SELECT sum(total_packets) total_packets FROM network_stats) n"
        ).fetchone()
    assert before == after


def test_empty_database_is_refused(schema_dsn: str) -> None:
    with (
        psycopg.connect(schema_dsn) as conn,
        pytest.raises(BenchmarkError, match="packet_flow is empty: load a dataset"),
    ):
        sample_parameters(conn, default_workload())
