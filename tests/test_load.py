"""Loading into the real server: counts, continuation, refusals, folders, dataset databases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from data_gen import GenerationParams
from ibcbench.datasets import ensure_dataset_info, with_database
from ibcbench.errors import ConfigError, LoadError
from ibcbench.load import generate_dataset, load_dataset
from ibcbench.migrate import Migrator, migrate_up

pytestmark = pytest.mark.db
TINY = GenerationParams(seed=42, scale="tiny")


def _counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in (
                "packet_flow",
                "clearing_operations",
                "network_stats",
                "channel_performance",
                "relayer_performance",
            )
        }


def test_loaded_counts_match_the_manifest_and_derived_totals(loaded_dsn: str) -> None:
    with psycopg.connect(loaded_dsn) as conn:
        manifest_rows = conn.execute("SELECT rows FROM ibcbench_loads").fetchone()[0]  # type: ignore[index]
        assert _counts(loaded_dsn) == manifest_rows
        totals = conn.execute(
            "SELECT (SELECT sum(total_packets) FROM network_stats), (SELECT sum(packets_sent) FROM channel_performance),"
            " (SELECT count(*) FROM packet_flow)"
        ).fetchone()
        assert totals[0] == totals[1] == totals[2]
        orphans = conn.execute(
            "SELECT count(*) FROM packet_flow p LEFT JOIN clearing_operations o ON o.id = p.operation_id WHERE o.id IS NULL"
        ).fetchone()
        assert orphans == (0,)


def test_second_load_appends_a_continuous_span(make_database) -> None:
    dsn = make_database("append")
    migrate_up(dsn)
    first = load_dataset(dsn, TINY, quiet=True)
    second = load_dataset(dsn, TINY, quiet=True)
    assert second.span_start >= first.span_end
    with psycopg.connect(dsn) as conn:
        gaps = conn.execute(
            "SELECT count(*) FROM (SELECT source_chain, source_channel, count(*) n, max(sequence) m, min(sequence) s"
            " FROM packet_flow GROUP BY 1, 2) x WHERE n <> m OR s <> 1"
        ).fetchone()
        assert gaps == (0,)
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM packet_flow").fetchone() == (
            40_000,
            40_000,
        )
        assert conn.execute("SELECT count(*) FROM ibcbench_loads").fetchone() == (2,)
    with pytest.raises(
        LoadError, match="overlaps the data already loaded .* drop --start to append after it"
    ):
        load_dataset(
            dsn,
            GenerationParams(seed=42, scale="tiny", start=datetime(2026, 1, 1, tzinfo=UTC)),
            quiet=True,
        )
    assert _counts(dsn)["packet_flow"] == 40_000


def test_folders_are_byte_identical_and_load_once(make_database, tmp_path: Path) -> None:
    a = generate_dataset(TINY, tmp_path / "a", quiet=True)
    generate_dataset(TINY, tmp_path / "b", quiet=True)
    for table in a.files:
        assert (tmp_path / "a" / f"{table}.pgcopy").read_bytes() == (
            tmp_path / "b" / f"{table}.pgcopy"
        ).read_bytes()
    with pytest.raises(LoadError, match="is not empty"):
        generate_dataset(TINY, tmp_path / "a", quiet=True)
    dsn = make_database("folder")
    migrate_up(dsn)
    loaded = load_dataset(dsn, tmp_path / "a", quiet=True)
    assert loaded.rows == sum(a.manifest["rows"].values())
    again = load_dataset(dsn, tmp_path / "b", quiet=True)
    assert again.skipped
    assert _counts(dsn) == a.manifest["rows"]


def test_missing_schema_is_refused_before_loading(make_database) -> None:
    dsn = make_database("noschema")
    with pytest.raises(
        LoadError, match=r"table packet_flow does not exist: run `ibcbench schema up` first"
    ):
        load_dataset(dsn, TINY, quiet=True)
    Migrator(dsn).up(1)
    with pytest.raises(LoadError, match="does not exist: run `ibcbench schema up` first"):
        load_dataset(dsn, TINY, quiet=True)


def test_a_failed_load_leaves_nothing(make_database, tmp_path: Path) -> None:
    generate_dataset(TINY, tmp_path / "d", quiet=True)
    (tmp_path / "d" / "clearing_operations.pgcopy").write_bytes(b"PGCOPY\n\xff\r\n\x00garbage")
    dsn = make_database("failed")
    migrate_up(dsn)
    with pytest.raises(psycopg.Error):
        load_dataset(dsn, tmp_path / "d", quiet=True)
    assert _counts(dsn)["packet_flow"] == 0


def test_dataset_databases_are_reused_and_foreign_ones_refused(server_dsn: str) -> None:
    info = ensure_dataset_info(server_dsn, scale="tiny", seed=4242)
    try:
        again = ensure_dataset_info(server_dsn, scale="tiny", seed=4242)
        assert info.created and not again.created and again.dsn == info.dsn
        assert _counts(info.dsn)["packet_flow"] == 20_000
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS ibcbench_tiny_s4242 WITH (FORCE)")
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ibcbench_tiny_s4343 WITH (FORCE)")
        conn.execute("CREATE DATABASE ibcbench_tiny_s4343")
    try:
        with pytest.raises(ConfigError, match="exists but was not created by ibcbench"):
            ensure_dataset_info(server_dsn, scale="tiny", seed=4343)
        with psycopg.connect(with_database(server_dsn, "ibcbench_tiny_s4343")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)  # untouched
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS ibcbench_tiny_s4343 WITH (FORCE)")
    with pytest.raises(ConfigError, match="scale 'huge' is unknown"):
        ensure_dataset_info(server_dsn, scale="huge", seed=1)
