"""Dataset databases: their clean state, the check of every use, repairs, refusals, rebuilds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ibcbench.data.datasets import (
    MARKER_TABLE,
    current_indexes,
    dataset_database_name,
    ensure_dataset_info,
    find_dataset,
)
from ibcbench.data.ownership import create_kit_database
from ibcbench.dsn import with_database
from ibcbench.errors import ConfigError
from ibcbench.infra.migrate import migrate_up

pytestmark = pytest.mark.db

SEED = 4501  # a dataset of these tests' own: ibcbench_tiny_s4501


def _drop(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def dataset(server_dsn: str) -> Iterator[str]:
    """The tests' tiny dataset, built once; each test leaves it as clean as it found it."""
    _drop(server_dsn, dataset_database_name("tiny", SEED))
    info = ensure_dataset_info(server_dsn, scale="tiny", seed=SEED)
    yield info.dsn
    _drop(server_dsn, info.database)


def _clean_indexes(dsn: str) -> dict[str, dict]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT indexes FROM {MARKER_TABLE}").fetchone()[0]  # type: ignore[index]


def test_a_built_dataset_records_its_clean_state(server_dsn: str, dataset: str) -> None:
    with psycopg.connect(dataset, autocommit=True) as conn:
        marker = conn.execute(f"SELECT status, indexes, rows FROM {MARKER_TABLE}").fetchone()
        assert marker is not None
        status, indexes, rows = marker
        assert status == "complete"
        assert indexes == current_indexes(conn)
        loads = conn.execute("SELECT rows FROM ibcbench_loads").fetchone()[0]  # type: ignore[index]
    assert rows == loads and rows["packet_flow"] == 20_000
    assert "idx_packet_flow_status_created" in indexes and "packet_flow_pkey" in indexes
    assert indexes["packet_flow_pkey"]["constraint"] == "packet_flow_pkey"
    info = ensure_dataset_info(server_dsn, scale="tiny", seed=SEED)
    assert info.state is not None
    assert info.state.manifest() == {
        "name": f"ibcbench_tiny_s{SEED}",
        "state": "intact",
        "repairs": [],
        "indexes": len(indexes),
        "rows": rows,
        "created": False,
    }


def test_missing_invalid_and_leftover_indexes_are_repaired_in_one_line(
    server_dsn: str, dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = _clean_indexes(dataset)
    with psycopg.connect(dataset, autocommit=True) as conn:
        # what a killed index strategy leaves: service's indexes dropped, a strategy's index built
        conn.execute("DROP INDEX idx_packet_flow_status_created")
        conn.execute("DROP INDEX idx_clearing_operations_wallet_created")
        conn.execute("DROP INDEX packet_flow_created_at_idx")
        conn.execute("ALTER TABLE network_stats DROP CONSTRAINT network_stats_chain_id_date_key")
        conn.execute(
            "CREATE INDEX idx_packet_flow_created_brin ON packet_flow USING brin (created_at)"
        )
        # a CREATE INDEX CONCURRENTLY that failed: an INVALID index stays behind
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY idx_clearing_operations_status_u"
                " ON clearing_operations (status)"
            )
        assert conn.execute(
            "SELECT NOT indisvalid FROM pg_index WHERE indexrelid ="
            " 'idx_clearing_operations_status_u'::regclass"
        ).fetchone() == (True,)
    capsys.readouterr()
    info = ensure_dataset_info(server_dsn, scale="tiny", seed=SEED)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert info.state is not None and info.state.state == "repaired"
    assert len(err) == 1 and err[0].startswith(f"ibcbench: dataset ibcbench_tiny_s{SEED}")
    repairs = " ".join(info.state.repairs)
    for name in (
        "idx_packet_flow_status_created",
        "idx_clearing_operations_wallet_created",
        "packet_flow_created_at_idx",
        "network_stats_chain_id_date_key",
        "idx_packet_flow_created_brin",
        "idx_clearing_operations_status_u",
    ):
        assert name in repairs and name in err[0]
    assert "dropped 1 INVALID index" in repairs and "recreated 4 missing index" in repairs
    with psycopg.connect(dataset) as conn:
        assert current_indexes(conn) == clean  # the same names, definitions, constraints
        assert conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'network_stats_chain_id_date_key'"
        ).fetchone() == (1,)
    again = ensure_dataset_info(server_dsn, scale="tiny", seed=SEED)
    assert again.state is not None and again.state.state == "intact"


def test_changed_rows_are_refused_not_measured(server_dsn: str, dataset: str) -> None:
    with psycopg.connect(dataset) as conn:
        loaded = conn.execute(f"SELECT rows FROM {MARKER_TABLE}").fetchone()[0]["network_stats"]  # type: ignore[index]
        saved = conn.execute(
            "DELETE FROM network_stats WHERE id = (SELECT min(id) FROM network_stats) RETURNING *"
        ).fetchall()
        conn.commit()
    try:
        with pytest.raises(
            ConfigError,
            match=rf"the dataset ibcbench_tiny_s{SEED} was changed: network_stats holds "
            rf"{loaded - 1} rows \(loaded: {loaded}\); drop it \(`DROP DATABASE ibcbench_tiny_s{SEED}`",
        ):
            ensure_dataset_info(server_dsn, scale="tiny", seed=SEED)
    finally:
        with psycopg.connect(dataset) as conn:
            marks = ", ".join(["%s"] * len(saved[0]))
            conn.execute(
                f"INSERT INTO network_stats OVERRIDING SYSTEM VALUE VALUES ({marks})", saved[0]
            )
    assert ensure_dataset_info(server_dsn, scale="tiny", seed=SEED).state.state == "intact"  # type: ignore[union-attr]


def test_no_repair_under_a_run_that_is_using_the_dataset(server_dsn: str, dataset: str) -> None:
    with psycopg.connect(dataset, autocommit=True) as other:  # another run, mid-strategy
        other.execute("DROP INDEX idx_packet_flow_sender_created")
        with pytest.raises(ConfigError, match=r"while 1 other session\(s\) use it \(pids "):
            ensure_dataset_info(server_dsn, scale="tiny", seed=SEED)
        assert other.execute("SELECT to_regclass('idx_packet_flow_sender_created')").fetchone() == (
            None,
        )  # untouched while in use
    info = ensure_dataset_info(server_dsn, scale="tiny", seed=SEED, report=None)
    assert info.state is not None and info.state.state == "repaired"


@pytest.mark.parametrize("left", ["no marker", "old marker"])
def test_a_half_built_dataset_is_built_again(server_dsn: str, left: str) -> None:
    seed = 4502
    name = dataset_database_name("tiny", seed)
    _drop(server_dsn, name)
    dsn = with_database(server_dsn, name)
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        create_kit_database(admin, name)
    migrate_up(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:  # a load killed half-way: part of the rows
        conn.execute(
            "INSERT INTO network_stats (chain_id, date, total_packets, successful_packets,"
            " failed_packets) VALUES ('cosmoshub-4', '2026-01-01', 1, 1, 0)"
        )
        if left == "old marker":  # what the old code wrote first, before it loaded
            conn.execute(
                f"CREATE TABLE {MARKER_TABLE} (scale text, seed bigint, status text,"
                " fingerprint text)"
            )
            conn.execute(f"INSERT INTO {MARKER_TABLE} VALUES ('tiny', {seed}, 'loading', 'x')")
    try:
        assert find_dataset(server_dsn, scale="tiny", seed=seed) is None  # nothing to use
        lines: list[str] = []
        info = ensure_dataset_info(server_dsn, scale="tiny", seed=seed, report=lines.append)
        assert info.created and info.state is not None and info.state.created
        assert lines == [
            f"dataset {name} was left half-built (no complete marker): "
            "dropping it and building it again"
        ]
        assert info.state.rows["packet_flow"] == 20_000
    finally:
        _drop(server_dsn, name)


def test_a_database_of_that_name_without_any_mark_is_refused(server_dsn: str) -> None:
    name = dataset_database_name("tiny", 4503)
    _drop(server_dsn, name)
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with pytest.raises(ConfigError, match="exists but was not created by ibcbench"):
            ensure_dataset_info(server_dsn, scale="tiny", seed=4503)
        with pytest.raises(ConfigError, match="exists but was not created by ibcbench"):
            find_dataset(server_dsn, scale="tiny", seed=4503)
    finally:
        _drop(server_dsn, name)


def test_bench_workload_repairs_before_measuring_and_its_manifest_says_so(
    server_dsn: str,
    dataset: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ibcbench.cli import main

    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(tmp_path))
    with psycopg.connect(dataset, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_packet_flow_channel_sequence")
    argv = ["bench", "workload", "--scale", "tiny", "--seed", str(SEED), "--engine", "python"]
    assert main([*argv, "--duration", "1", "--clients", "1", "--dsn", server_dsn]) == 0
    assert "repaired: recreated 1 missing index(es): idx_packet_flow_channel_sequence" in (
        capsys.readouterr().err
    )
    (run,) = list(tmp_path.iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["dataset"]["state"] == "repaired"
    assert manifest["dataset"]["repairs"] == [
        "recreated 1 missing index(es): idx_packet_flow_channel_sequence"
    ]
    assert manifest["dataset"]["indexes"] == len(_clean_indexes(dataset))
    assert manifest["dataset"]["rows"]["packet_flow"] == 20_000


def test_a_notebook_run_records_the_dataset_it_found(
    server_dsn: str, dataset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ibcbench.cli import main

    notebook = tmp_path / "probe.ipynb"
    notebook.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "id": "parameters",
                        "metadata": {"tags": ["parameters"]},
                        "source": [
                            "dsn = None\n",
                            "scale = 'tiny'\n",
                            "seed = 42\n",
                            "run_dir = None\n",
                        ],
                        "outputs": [],
                        "execution_count": None,
                    },
                    {
                        "cell_type": "code",
                        "id": "probe",
                        "metadata": {},
                        "source": ["print(scale, seed)"],
                        "outputs": [],
                        "execution_count": None,
                    },
                ],
                "metadata": {
                    "kernelspec": {"name": "python3", "display_name": "Python 3"},
                    "language_info": {"name": "python"},
                },
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(tmp_path / "runs"))
    with psycopg.connect(dataset, autocommit=True) as conn:
        conn.execute("CREATE INDEX leftover_of_a_killed_run ON packet_flow (receiver)")
    argv = ["run", str(notebook), "-p", "scale", "tiny", "-p", "seed", str(SEED)]
    assert main([*argv, "--dsn", server_dsn]) == 0
    (run,) = list((tmp_path / "runs").iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["dataset"]["state"] == "repaired"
    assert manifest["dataset"]["repairs"] == [
        "dropped 1 index(es) not in the dataset: leftover_of_a_killed_run"
    ]
    with psycopg.connect(dataset) as conn:
        assert conn.execute("SELECT to_regclass('leftover_of_a_killed_run')").fetchone() == (None,)
