"""The load benchmark on a small run: same rows in every scenario, ratios, its scratch database gone."""

from __future__ import annotations

import math

import pandas as pd
import psycopg
import pytest

from ibcbench.bench.ingest import (
    OVERLAP_SCENARIOS,
    SCRATCH_DB,
    Scenario,
    _median_of_rounds,
    format_load_benchmark,
    paired_ratios,
    run_load_benchmark,
)
from ibcbench.errors import BenchmarkError

FACTS = "packet_flow+clearing_operations"


def _rounds(ceiling: list[float], end_to_end: list[float]) -> pd.DataFrame:
    rows = []
    for r, (c, e) in enumerate(zip(ceiling, end_to_end, strict=True)):
        for i, (name, rate) in enumerate(
            (("COPY ceiling (pre-generated)", c), ("generate + load, producer thread", e))
        ):
            rows.append(
                {
                    "i": i,
                    "round": r,
                    "scenario": name,
                    "layout": "plain",
                    "secondary_indexes": False,
                    "tables": FACTS,
                    "connections": 1,
                    "rows": 1000,
                    "rows_per_s": rate,
                    "seconds": 1000 / rate,
                }
            )
    return pd.DataFrame(rows)


def test_ratios_are_paired_within_rounds() -> None:
    # the server's pace drifts between rounds; end to end stays at 0.9 of the ceiling in two of
    # three rounds. Medians of different rounds (150 and 90 rows/s) would say 0.6.
    records = _rounds([100.0, 200.0, 150.0], [90.0, 180.0, 60.0])
    paired = paired_ratios(records)
    assert paired.loc[1].to_dict() == {"ratio_to_ceiling": 0.9, "ratio_min": 0.4, "ratio_max": 0.9}
    medians = _median_of_rounds(records)
    assert medians.loc[1, "rows_per_s"] / medians.loc[0, "rows_per_s"] == pytest.approx(0.6)


def test_a_round_without_its_ceiling_gives_no_ratio() -> None:
    records = _rounds([100.0, 200.0], [90.0, 100.0])
    records = records[~((records["round"] == 1) & (records.i == 0))]
    assert paired_ratios(records).loc[1, "ratio_to_ceiling"] == 0.9


@pytest.mark.db
def test_overlap_scenarios_load_the_same_rows(server_dsn: str) -> None:
    two_conns = Scenario(
        "COPY ceiling, packet_flow only", "memory", "plain", False, ("packet_flow",), 2
    )
    stripped = Scenario(
        "COPY ceiling, packet_flow only",
        "memory",
        "plain",
        False,
        ("packet_flow",),
        1,
        "unlogged, no primary key",
    )
    scenarios = (*OVERLAP_SCENARIOS, two_conns, stripped)
    result = run_load_benchmark(server_dsn, packets=3_000, seed=11, scenarios=scenarios, rounds=2)
    frame = result.frame
    assert list(frame.scenario) == [s.name for s in scenarios]
    assert frame.tables.iloc[-1] == "packet_flow (unlogged, no primary key)"
    assert frame.rows.iloc[-1] == 3_000
    assert result.stripped_packet_flow_rows_per_s["unlogged, no primary key"] > 0
    assert math.isnan(result.stripped_packet_flow_rows_per_s["no primary key"])
    facts = frame[frame.tables == FACTS]
    assert facts.rows.nunique() == 1 and facts.rows.iloc[0] > 3_000
    assert frame[frame.connections == 2].rows.iloc[0] == 3_000
    # the ratios are the medians of per-round ratios, within their rounds' range
    e2e = facts[facts.scenario == "generate + load, producer thread"].iloc[0]
    assert e2e.ratio_min <= e2e.ratio_to_ceiling <= e2e.ratio_max
    assert result.ratio_end_to_end == e2e.ratio_to_ceiling
    assert result.ratio_end_to_end_range == (e2e.ratio_min, e2e.ratio_max)
    assert frame[frame.tables != FACTS].ratio_to_ceiling.isna().all()  # no ceiling to pair with
    assert math.isnan(result.ceiling_packet_flow_rows_per_s)  # not among these scenarios
    assert result.ceiling_packet_flow_2conn_rows_per_s > 0
    assert (frame.rounds == 2).all()
    # every round in its own seeded order: a permutation of the scenarios, not always the same
    orders = result.manifest["round_orders"]
    assert [sorted(o) for o in orders] == [list(range(len(scenarios)))] * 2 and orders[0] != orders[
        1
    ]
    report = format_load_benchmark(result)
    assert "median of 2 rounds" in report and "each round against its own ceiling" in report
    assert "2 connections" in report and "1 connection)" not in report  # nan is left out
    assert "(1 connection, unlogged, no primary key)" in report
    with psycopg.connect(server_dsn) as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (SCRATCH_DB,)).fetchone()
            is None
        )


@pytest.mark.db
def test_too_few_packets_are_refused(server_dsn: str) -> None:
    with pytest.raises(
        BenchmarkError, match="packets must be at least 1000 to time anything, not 10"
    ):
        run_load_benchmark(server_dsn, packets=10)
    with pytest.raises(BenchmarkError, match="rounds must be at least 1, not 0"):
        run_load_benchmark(server_dsn, rounds=0)


def test_a_user_database_of_the_scratch_name_is_refused_and_kept(
    server_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibcbench.cli import main
    from ibcbench.dsn import with_database

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SCRATCH_DB}")  # the user's own, made by hand
    user = with_database(server_dsn, SCRATCH_DB)
    try:
        with psycopg.connect(user, autocommit=True) as conn:
            conn.execute("CREATE TABLE mine (a int)")
            conn.execute("INSERT INTO mine VALUES (7)")
        argv = ["bench", "load", "--packets", "2000", "--rounds", "1", "--scenarios", "overlap"]
        assert main([*argv, "--dsn", server_dsn]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert (
            f"database '{SCRATCH_DB}' exists but was not created by ibcbench: nothing was dropped"
            in err
        )
        with psycopg.connect(user) as conn:
            assert conn.execute("SELECT a FROM mine").fetchall() == [(7,)]
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
