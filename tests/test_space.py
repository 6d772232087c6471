"""Running out of space: ``generate --out`` on a full filesystem or under a file size limit, a
folder it may not write, and a load into a tablespace that fills up (PostgreSQL's DiskFull).

The file size limit (RLIMIT_FSIZE in a child process: writes past it fail with EFBIG) runs
anywhere. A full filesystem is a tmpfs the test mounts and unmounts (the ``small_filesystem``
fixture), which needs root (CI runs as root); as another user those tests fail with a message that
says so, never pass unseen.
"""

from __future__ import annotations

import os
import pwd
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from data_gen import GenerationParams
from data_gen.tables import TABLES
from ibcbench.data.load import generate_dataset, load_dataset
from ibcbench.errors import LoadError
from ibcbench.faults.tmpfs import SmallFilesystem
from ibcbench.infra.migrate import migrate_up

SMALL = GenerationParams(seed=11, scale="tiny", packets=6_000)
ONE_LINE = r"^ibcbench: error: [^\n]+\n$"


#: root writes anywhere: its child drops the capabilities that let it (util-linux's setpriv)
WITHOUT_DAC = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]


def _generate(
    out: Path, *, fsize: int | None = None, as_writer: bool = False
) -> subprocess.CompletedProcess[str]:
    """``ibcbench generate`` as a user runs it, in a child: with a file size limit, or (as_writer)
    subject to the folder's permissions even when the test runs as root."""

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    prefix = WITHOUT_DAC if as_writer and os.geteuid() == 0 else []
    return subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "ibcbench.cli",
            "generate",
            "--scale",
            "tiny",
            "--packets",
            "6000",
            "--seed",
            "11",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        cwd="/",
        timeout=300,
    )


@pytest.mark.parametrize("where", ["new", "nested", "empty"])
def test_a_file_size_limit_stops_generate_in_one_line_and_removes_what_it_wrote(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "keep.txt").write_text("not the kit's")
    out = {"new": tmp_path / "out", "nested": tmp_path / "a" / "b", "empty": tmp_path / "empty"}[
        where
    ]
    if where == "empty":
        out.mkdir()
    proc = _generate(out, fsize=1_000_000)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("ibcbench: error: "), proc.stderr
    assert f"a file in {out} reached the file size limit (ulimit -f) after 1.0 MB" in proc.stderr
    assert "raise the limit or choose another --out" in proc.stderr
    if where == "empty":  # the folder was there: it stays, empty
        assert "the files written were removed" in proc.stderr
        assert list(out.iterdir()) == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "keep.txt"]
    else:  # the kit made it (and its parent): both go
        assert "its folder was removed" in proc.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert (tmp_path / "keep.txt").read_text() == "not the kit's"


def test_a_failing_generator_leaves_no_half_written_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ibcbench.data.load.producer as load_module
    from data_gen import generate

    def broken(params: GenerationParams):  # type: ignore[no-untyped-def]
        gen = iter(generate(params))
        yield next(gen)
        raise KeyboardInterrupt  # as a Ctrl-C half-way

    monkeypatch.setattr(load_module, "generate", broken)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(SMALL, tmp_path / "out", quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_it_may_not_write_is_one_line_before_any_work(tmp_path: Path) -> None:
    parent = Path(tempfile.mkdtemp(prefix="ibcbench-ro.", dir="/var/tmp"))
    try:
        os.chmod(parent, 0o555)  # no one may add to it (root may: its child drops that right)
        proc = _generate(parent / "out", as_writer=True)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr == (
            f"ibcbench: error: permission denied writing {parent / 'out'}: make it writable or "
            "choose another --out\n"
        )
        assert list(parent.iterdir()) == []
    finally:
        os.chmod(parent, 0o755)
        parent.rmdir()


@pytest.mark.parametrize("where", ["new", "empty"])
def test_generate_on_a_full_filesystem_is_one_line_and_leaves_it_empty(
    small_filesystem: Callable[..., SmallFilesystem], where: str
) -> None:
    fs = small_filesystem(2_000_000)
    out = fs.path / "data" if where == "new" else fs.path
    proc = _generate(out)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    # refused up front by the size estimate, or by the write that met the full disk
    assert proc.stderr.startswith(f"ibcbench: error: no space left on {out}")
    assert proc.stderr.endswith("free space or choose another --out\n")
    assert list(fs.path.iterdir()) == [] and fs.used_bytes() == 0


# ---- the server's disk ---------------------------------------------------------------------------
def _digest(dsn: str) -> dict[str, tuple[int, str]]:
    """Per table: rows and an md5 of the generator's columns (ids and timestamps the server sets differ)."""
    out = {}
    with psycopg.connect(dsn) as conn:
        for table, columns in TABLES.items():
            out[table] = conn.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') "
                    "FROM (SELECT md5(ROW({})::text) h FROM {}) s"
                ).format(
                    sql.SQL(", ").join(sql.Identifier(c) for c, _ in columns), sql.Identifier(table)
                )
            ).fetchone()
    return out


def _size(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]


@pytest.mark.db
@pytest.mark.parametrize(
    ("source", "fails_in"),
    [
        ("folder", "packet_flow"),
        ("generated", "packet_flow"),
        ("folder", "clearing_operations"),
    ],
)
def test_a_load_into_a_full_tablespace_rolls_back_in_one_line_and_converges_after(
    server_dsn: str,
    make_database,
    small_filesystem: Callable[..., SmallFilesystem],
    tmp_path: Path,
    source: str,
    fails_in: str,
) -> None:
    """packet_flow's chunks are new relations (the rollback truncates them); clearing_operations
    existed before the load, so the pages it added stay until the kit's VACUUM returns the heap's
    (its indexes' pages stay allocated, free for the next load)."""
    folder = tmp_path / "data"
    generate_dataset(SMALL, folder, quiet=True)
    what = folder if source == "folder" else SMALL  # `load DIR`, or `seed` (generated as it loads)
    ref = make_database("space_ref")
    migrate_up(ref)
    empty = _size(ref)
    load_dataset(ref, folder, quiet=True)
    want, load_bytes = _digest(ref), _size(ref) - empty
    with psycopg.connect(ref) as conn:
        chunks, operations, operation_indexes = conn.execute(
            "SELECT hypertable_size('packet_flow'), pg_total_relation_size('clearing_operations'),"
            " pg_indexes_size('clearing_operations')"
        ).fetchone()  # type: ignore[misc]
    # room for half the load (it fails in packet_flow), or for packet_flow and half of
    # clearing_operations
    room = load_bytes // 2 if fails_in == "packet_flow" else chunks + operations // 2

    with psycopg.connect(server_dsn) as conn:  # the server's OS user owns its data directory
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
    owner = pwd.getpwuid(os.stat(data_dir).st_uid).pw_name
    fs = small_filesystem(2 * empty + 3 * load_bytes + 64_000_000, owner=owner)
    name = f"t_space_full_{source}_{fails_in[:6]}_{os.getpid()}"
    space = f"t_space_{source}_{fails_in[:6]}_{os.getpid()}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
                sql.Identifier(space), sql.Literal(str(fs.path))
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} TABLESPACE {}").format(
                sql.Identifier(name), sql.Identifier(space)
            )
        )
    dsn = make_conninfo(server_dsn, dbname=name)
    try:
        migrate_up(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        base = fs.used_bytes()
        fs.resize(base + room)
        with pytest.raises(LoadError) as failed:
            load_dataset(dsn, what, quiet=True)
        message = str(failed.value)
        assert "\n" not in message
        assert message.startswith(
            f"the server ran out of disk space loading {fails_in} into database {name!r}: "
            f'tablespace {space!r} ({fs.path}) is full (could not extend file "pg_tblspc/'
        )
        assert message.endswith(
            "nothing was committed, the load rolled back: free space on that filesystem or move "
            "the database to a larger tablespace (ALTER DATABASE ... SET TABLESPACE), then run "
            "the load again"
        )
        assert all(rows == 0 for rows, _ in _digest(dsn).values())
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM ibcbench_loads").fetchone() == (0,)
            # the heap pages the load added to a table that was there before: VACUUMed away
            heap = conn.execute("SELECT pg_relation_size('clearing_operations')").fetchone()
            assert heap == (0,)
        kept = fs.used_bytes() - base  # the load's chunks went with the rollback
        assert kept < 1_000_000 + (operation_indexes if fails_in == "clearing_operations" else 0)

        fs.resize(base + 3 * load_bytes + 64_000_000)  # space freed: the same load converges
        again = load_dataset(dsn, what, quiet=True)
        assert not again.skipped
        assert _digest(dsn) == want
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            admin.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(space)))


@pytest.mark.db
def test_a_full_disk_no_command_expected_is_still_one_line(
    make_database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import errno

    import ibcbench.commands.data as data_commands
    from ibcbench.cli import main

    def full(*_: object, **__: object) -> None:  # a write the command did not expect to fail
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.txt"))

    folder = tmp_path / "d"
    generate_dataset(SMALL, folder, quiet=True)
    dsn = make_database("space_cli")
    migrate_up(dsn)
    monkeypatch.setattr(data_commands, "_print_load", full)
    assert main(["load", str(folder), "--dsn", dsn]) == 1
    assert capsys.readouterr().err == (
        f"ibcbench: error: no space left on {tmp_path / 'out.txt'}: free space and run the "
        "command again\n"
    )
    from ibcbench.cli import _disk_full

    raised = psycopg.errors.DiskFull('could not extend file "base/1/2": No space left on device')
    assert _disk_full(raised) == (
        'the database server ran out of disk space (could not extend file "base/1/2": No space '
        "left on device); the statement that needed it failed and its transaction rolled back: "
        "free space on the server's disk and run the command again"
    )
    assert _disk_full(ValueError("no")) is None
