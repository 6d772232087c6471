"""Loading into the real server: counts, continuation, refusals, folders, dataset databases."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from data_gen import GenerationParams, generate
from ibcbench.cli import main
from ibcbench.data.datasets import ensure_dataset_info
from ibcbench.data.load import generate_dataset, load_dataset, resume_state
from ibcbench.dsn import with_database
from ibcbench.errors import ConfigError, LoadError
from ibcbench.infra.migrate import Migrator, migrate_up

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


def test_a_dirty_schema_is_refused_before_seeding(make_database, capsys) -> None:
    dsn = make_database("dirtyseed")
    migrate_up(dsn)
    with psycopg.connect(dsn) as conn:  # what a failed migration leaves
        conn.execute("UPDATE schema_migrations SET dirty = true")
    assert main(["seed", "--scale", "tiny", "--quiet", "--dsn", dsn]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is dirty at version" in err and "nothing was loaded" in err
    assert _counts(dsn)["packet_flow"] == 0


def test_a_failed_load_leaves_nothing(make_database, tmp_path: Path) -> None:
    generate_dataset(TINY, tmp_path / "d", quiet=True)
    damaged = tmp_path / "d" / "clearing_operations.pgcopy"
    data = bytearray(damaged.read_bytes())
    data[1000:1100] = b"\x7f" * 100  # same size, broken tuples: fails after packet_flow went in
    damaged.write_bytes(bytes(data))
    manifest_path = (
        tmp_path / "d" / "manifest.json"
    )  # a manifest that agrees: the server refuses it
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["clearing_operations"]["sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    dsn = make_database("failed")
    migrate_up(dsn)
    with pytest.raises(
        LoadError,
        match=r"the server refused the data \(.*\): nothing was committed; .* generate it again",
    ):
        load_dataset(dsn, tmp_path / "d", quiet=True)
    assert _counts(dsn)["packet_flow"] == 0
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ibcbench_loads").fetchone() == (0,)
        assert conn.execute("SELECT status FROM ibcbench_load_attempts").fetchall() == [("failed",)]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            "truncate",
            r"packet_flow.pgcopy has 100 bytes but the manifest says \d+: the folder is damaged",
        ),
        ("remove", r"network_stats.pgcopy is missing: generate the folder again"),
        ("manifest", r"holds no manifest.json: generate it with `ibcbench generate --out"),
    ],
)
def test_damaged_folders_are_refused_before_loading(
    make_database, tmp_path: Path, damage: str, message: str
) -> None:
    folder = tmp_path / "f"
    generate_dataset(GenerationParams(seed=1, scale="tiny", packets=2_000), folder, quiet=True)
    if damage == "truncate":
        path = folder / "packet_flow.pgcopy"
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "remove":
        (folder / "network_stats.pgcopy").unlink()
    else:
        (folder / "manifest.json").unlink()
    dsn = make_database("damaged")
    migrate_up(dsn)
    with pytest.raises(LoadError, match=message):
        load_dataset(dsn, folder, quiet=True)
    assert _counts(dsn)["packet_flow"] == 0


@pytest.mark.parametrize("overlap", ["thread", "process", "none"])
def test_every_overlap_mode_loads_the_same_rows(make_database, overlap: str) -> None:
    params = GenerationParams(seed=3, scale="tiny", packets=5_000)
    dsn = make_database(f"overlap_{overlap}")
    migrate_up(dsn)
    result = load_dataset(dsn, params, quiet=True, overlap=overlap)
    assert _counts(dsn) == result.manifest["rows"] == {t.table: t.rows for t in result.tables}
    with psycopg.connect(dsn) as conn:
        digest = conn.execute(
            "SELECT md5(string_agg(md5(p::text), '' ORDER BY id)) FROM packet_flow p"
        ).fetchone()[0]  # type: ignore[index]
    assert digest == _PACKET_DIGEST.setdefault("seed3", digest)


_PACKET_DIGEST: dict[str, str] = {}  # the modes must agree: the first one sets the reference


@pytest.mark.parametrize("overlap", ["thread", "process", "none"])
def test_a_failing_generator_fails_the_load_and_leaves_nothing(
    make_database, monkeypatch: pytest.MonkeyPatch, overlap: str
) -> None:
    import ibcbench.data.load.producer as load_module

    def broken(params: GenerationParams):  # type: ignore[no-untyped-def]
        gen = iter(generate(params))
        yield next(gen)  # one packet_flow batch goes in, then generation fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(load_module, "generate", broken)
    dsn = make_database(f"genfail_{overlap}")
    migrate_up(dsn)
    with pytest.raises(LoadError, match="generation failed: RuntimeError: disk full"):
        load_dataset(
            dsn, GenerationParams(seed=3, scale="tiny", packets=5_000), quiet=True, overlap=overlap
        )
    assert _counts(dsn)["packet_flow"] == 0


def test_unknown_overlap_mode_is_refused() -> None:
    with pytest.raises(
        ConfigError, match="overlap must be one of process, thread, none, not 'fork'"
    ):
        load_dataset("postgresql://nobody@127.0.0.1:1/none", TINY, overlap="fork")


def test_concurrent_loads_take_turns(make_database) -> None:
    """Two loads at once into one database: the advisory lock makes the second continue the first."""
    dsn = make_database("concurrent")
    migrate_up(dsn)
    params = GenerationParams(seed=5, scale="tiny", packets=5_000)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: load_dataset(dsn, params, quiet=True), range(2)))
    first, second = sorted(results, key=lambda r: r.span_start)
    assert second.span_start >= first.span_end
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM packet_flow").fetchone() == (
            10_000,
            10_000,
        )
        assert conn.execute(_GAPS).fetchone() == (0,)


def test_a_folder_generated_as_a_continuation_appends(make_database, tmp_path: Path) -> None:
    dsn = make_database("continued")
    migrate_up(dsn)
    params = GenerationParams(seed=6, scale="tiny", packets=4_000)
    load_dataset(dsn, params, quiet=True)
    with psycopg.connect(dsn) as conn:
        state = resume_state(conn)
    generate_dataset(replace(params, resume=state), tmp_path / "next", quiet=True)
    generate_dataset(params, tmp_path / "same", quiet=True)
    assert load_dataset(dsn, tmp_path / "same", quiet=True).skipped  # the loaded span itself
    generate_dataset(replace(params, seed=7), tmp_path / "other", quiet=True)  # not a continuation
    with pytest.raises(LoadError, match="already holds packets up to .* or use a fresh database"):
        load_dataset(dsn, tmp_path / "other", quiet=True)
    loaded = load_dataset(dsn, tmp_path / "next", quiet=True)
    assert not loaded.skipped and loaded.span_start > state.start  # type: ignore[operator]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM packet_flow").fetchone() == (
            8_000,
            8_000,
        )
        assert conn.execute(_GAPS).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM ibcbench_loads").fetchone() == (2,)


def test_cli_generate_load_and_seed(make_database, tmp_path: Path, capsys) -> None:
    dsn = make_database("cli")
    migrate_up(dsn)
    out = tmp_path / "cli"
    assert (
        main(["generate", "--scale", "tiny", "--packets", "3000", "--seed", "9", "--out", str(out)])
        == 0
    )
    assert main(["load", str(out), "--dsn", dsn]) == 0
    assert "loaded" in capsys.readouterr().out
    assert main(["load", str(out), "--dsn", dsn]) == 0
    assert "already loaded" in capsys.readouterr().out
    assert (
        main(["seed", "--scale", "tiny", "--packets", "3000", "--dsn", dsn, "--overlap", "none"])
        == 0
    )
    start = "2026-01-01T00:00:00+00:00"
    assert (
        main(["seed", "--scale", "tiny", "--packets", "3000", "--dsn", dsn, "--start", start]) == 1
    )
    assert "overlaps the data already loaded" in capsys.readouterr().err
    assert _counts(dsn)["packet_flow"] == 6_000


_GAPS = (
    "SELECT count(*) FROM (SELECT source_chain, source_port, source_channel, count(*) n, max(sequence) m,"
    " min(sequence) s FROM packet_flow GROUP BY 1, 2, 3) x WHERE n <> m OR s <> 1"
)


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


@pytest.mark.parametrize("source", ["generated", "folder"])
def test_the_load_clock_includes_commit(make_database, tmp_path: Path, source: str) -> None:
    import time

    dsn = make_database(f"slow_commit_{source}")
    migrate_up(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:  # a COMMIT that takes 1.5 s
        conn.execute(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON ibcbench_loads"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
        )
    params = GenerationParams(seed=5, scale="tiny", packets=2_000)
    what = params
    if source == "folder":
        what = tmp_path / "data"  # type: ignore[assignment]
        generate_dataset(params, what, quiet=True)
    started = time.perf_counter()
    result = load_dataset(dsn, what, quiet=True)
    wall = time.perf_counter() - started
    assert result.elapsed_s >= 1.5 and wall - result.elapsed_s < 0.5
