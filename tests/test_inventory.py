"""``ibcbench db status`` lists the kit's dataset databases: rows, size, chunks, state, read only."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from ibcbench.cli import main
from ibcbench.data.datasets import dataset_database_name, ensure_dataset_info
from ibcbench.data.inventory import list_datasets

pytestmark = pytest.mark.db

SEED = 4611  # a dataset of these tests' own: ibcbench_tiny_s4611
NAME = dataset_database_name("tiny", SEED)


def _drop(admin_dsn: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')


@pytest.fixture(scope="module")
def dataset(server_dsn: str) -> Iterator[str]:
    _drop(server_dsn)
    info = ensure_dataset_info(server_dsn, scale="tiny", seed=SEED)
    yield info.dsn
    _drop(server_dsn)


def _status(server_dsn: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["db", "status", "--dsn", server_dsn]) == 0
    return capsys.readouterr().out


def _block(out: str) -> str:
    """The lines about this test's dataset."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(NAME + ":"))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        block.append(line)
    return "\n".join(block)


def test_db_status_lists_the_dataset_with_its_rows_chunks_and_state(
    server_dsn: str, dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    block = _block(_status(server_dsn, capsys))
    assert "intact" in block
    assert " MB" in block or " kB" in block
    assert "rows, as loaded (marker): packet_flow 20,000" in block
    assert "packet_flow: 1 chunks, 0 compressed, compression off" in block
    (found,) = [d for d in list_datasets(server_dsn) if d.name == NAME]
    assert found.rows_exact and found.rows["packet_flow"] == 20_000
    assert (found.scale, found.seed, found.chunks) == ("tiny", SEED, 1)
    assert found.size_bytes > 1_000_000


def test_db_status_says_what_a_run_would_repair_and_repairs_nothing(
    server_dsn: str, dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(dataset, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_packet_flow_status_created")
        conn.execute("CREATE INDEX ibcbench_leftover ON packet_flow (sequence)")
    block = _block(_status(server_dsn, capsys))
    assert "damaged, the next run repairs it" in block
    assert "ibcbench_leftover" in block and "idx_packet_flow_status_created" in block
    with psycopg.connect(dataset) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes").fetchall()}
    assert "ibcbench_leftover" in names and "idx_packet_flow_status_created" not in names
    state = ensure_dataset_info(server_dsn, scale="tiny", seed=SEED).state  # a run repairs it
    assert state is not None and state.state == "repaired"
    assert "intact" in _block(_status(server_dsn, capsys))


def test_db_status_shows_compressed_chunks(
    server_dsn: str, dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(dataset, autocommit=True) as conn:
        edition = conn.execute("SELECT current_setting('timescaledb.license')").fetchone()
        if edition != ("timescale",):
            pytest.skip("compression needs the Community edition")
        conn.execute(
            "ALTER TABLE packet_flow SET (timescaledb.compress,"
            " timescaledb.compress_segmentby = 'source_chain')"
        )
        conn.execute("SELECT compress_chunk(c) FROM show_chunks('packet_flow') c")
    block = _block(_status(server_dsn, capsys))
    assert "packet_flow: 1 chunks, 1 compressed, compression on (segmentby source_chain" in block


def test_a_database_of_the_name_without_marker_or_mark_is_named_not_the_kits(
    server_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "ibcbench_tiny_s4612"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{other}"')
        conn.execute(f'CREATE DATABASE "{other}"')
    try:
        out = _status(server_dsn, capsys)
        assert f"  {other}: " in out and "not the kit's" in out
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
