"""Interrupted loads and damaged input on the real server: one line, nothing committed, the journal.

A load is stopped mid-COPY deterministically: the test holds a SHARE lock on a table the load writes
after an earlier one, so the load's COPY (or its merge) waits inside its transaction, visible in
pg_stat_activity; then the fault is injected (the backend terminated, SIGINT, SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from data_gen import GenerationParams
from data_gen.tables import TABLES
from ibcbench.cli import main
from ibcbench.data.journal import ABANDONED_MESSAGE
from ibcbench.data.load import generate_dataset, load_dataset
from ibcbench.errors import LoadError
from ibcbench.infra.migrate import migrate_up
from ibcbench.signals import default_sigint

pytestmark = pytest.mark.db
SMALL = GenerationParams(seed=5, scale="tiny", packets=3_000)
#: a DSN nothing listens on: a check that connected first would fail with a connection error instead
NOWHERE = "postgresql://ibcbench@127.0.0.1:1/nowhere?connect_timeout=1"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "f"
    generate_dataset(SMALL, out, quiet=True)
    return out


def _rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return sum(
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]  # type: ignore[index]
            for t in TABLES
        )


def _attempts(dsn: str) -> list[tuple[str, str | None]]:
    with psycopg.connect(dsn) as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT status, message FROM ibcbench_load_attempts ORDER BY id"
            ).fetchall()
        ]


def _waiting(dsn: str, like: str, timeout: float = 60) -> int:
    """The pid of the backend whose query matches ``like`` once it waits on a lock."""
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
                " AND query ILIKE %s",
                (dbname, like),
            ).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.02)
    raise AssertionError(f"no backend of {dbname} came to wait on {like!r}")


@contextmanager
def _held(dsn: str, table: str) -> Iterator[Callable[[], None]]:
    """A SHARE lock on ``table`` (a load's writes wait for it); the yielded function releases it."""
    conn = psycopg.connect(dsn)
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.Identifier(table)))
    try:
        yield conn.rollback
    finally:
        conn.close()


# what each command writes after an earlier table went in, and the statement that then waits
CASES = {
    "load": ("clearing_operations", 'COPY "clearing_operations"%'),
    "seed": ("network_stats", 'INSERT INTO "network_stats"%'),
}


def _argv(command: str, dsn: str, folder: Path) -> list[str]:
    if command == "load":
        return ["load", str(folder), "--quiet", "--dsn", dsn]
    return ["seed", "--seed", "5", "--scale", "tiny", "--packets", "3000", "--quiet", "--dsn", dsn]


def _dead(dsn: str, pid: int) -> bool:
    with psycopg.connect(dsn) as conn:
        return not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()


def _wait_dead(dsn: str, pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not _dead(dsn, pid):
        assert time.monotonic() < deadline, f"backend {pid} is still there"
        time.sleep(0.02)


# ---- a lost connection ------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["load", "seed"])
def test_a_terminated_backend_is_one_line_nothing_committed_and_journaled(
    make_database, folder: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    dsn = make_database(f"term_{command}")
    migrate_up(dsn)
    table, like = CASES[command]
    with ThreadPoolExecutor(1) as pool, _held(dsn, table) as release:
        future: Future[int] = pool.submit(main, _argv(command, dsn, folder))
        pid = _waiting(dsn, like)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        release()
        assert future.result(timeout=60) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("ibcbench: error: the connection to the server was lost during the load")
    assert "nothing was committed; run " in err
    assert _rows(dsn) == 0
    [(status, message)] = _attempts(dsn)
    assert status == "failed" and message is not None
    assert message.startswith("the connection to the server was lost")
    # the same command again converges
    assert main(_argv(command, dsn, folder)) == 0
    assert _attempts(dsn)[-1] == ("committed", None)
    assert _rows(dsn) > 0


def test_a_server_gone_before_the_load_is_one_line(folder: Path) -> None:
    with pytest.raises(Exception, match="cannot connect to") as info:
        load_dataset(NOWHERE, folder, quiet=True)
    assert "\n" not in str(info.value)


# ---- signals: a child process, as a user runs it ----------------------------------------------
def _spawn(argv: list[str]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.Popen(
        [sys.executable, "-m", "ibcbench.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env | {"PYTHONUNBUFFERED": "1"},
        start_new_session=True,
        preexec_fn=default_sigint,
    )


@pytest.mark.parametrize("command", ["load", "seed"])
def test_sigint_mid_copy_says_nothing_was_committed(
    make_database, folder: Path, command: str
) -> None:
    dsn = make_database(f"int_{command}")
    migrate_up(dsn)
    table, like = CASES[command]
    with _held(dsn, table) as release:
        proc = _spawn(_argv(command, dsn, folder))
        pid = _waiting(dsn, like)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        release()
    _wait_dead(dsn, pid)
    lines = err.strip().splitlines()
    assert proc.returncode == 130, err
    assert len(lines) == 1, err
    assert lines[0].startswith(
        "ibcbench: interrupted: the load was interrupted: nothing was committed"
    )
    assert _rows(dsn) == 0
    assert [s for s, _ in _attempts(dsn)] == ["interrupted"]


def test_a_killed_load_is_settled_as_abandoned_by_the_next(
    make_database, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database("killed")
    migrate_up(dsn)
    table, like = CASES["load"]
    with _held(dsn, table) as release:
        proc = _spawn(_argv("load", dsn, folder))
        pid = _waiting(dsn, like)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        release()  # the backend reads the closed socket and ends
    _wait_dead(dsn, pid)
    assert _rows(dsn) == 0
    assert [s for s, _ in _attempts(dsn)] == ["running"]
    assert main(_argv("load", dsn, folder)) == 0
    out = capsys.readouterr().out
    cut = [line for line in out.splitlines() if "cut off" in line]
    assert len(cut) == 1 and "none of its rows were committed" in cut[0], out
    assert _attempts(dsn) == [("abandoned", ABANDONED_MESSAGE), ("committed", None)]
    # a later load settles nothing more
    assert main(_argv("load", dsn, folder)) == 0
    assert "cut off" not in capsys.readouterr().out
    assert [s for s, _ in _attempts(dsn)] == ["abandoned", "committed", "skipped"]


def test_a_load_cut_off_after_commit_is_settled_as_committed(make_database, folder: Path) -> None:
    dsn = make_database("latecommit")
    migrate_up(dsn)
    first = load_dataset(dsn, folder, quiet=True)
    with psycopg.connect(dsn) as conn:  # what a kill between COMMIT and the journal's end leaves
        conn.execute(
            "UPDATE ibcbench_load_attempts SET status = 'running', ended_at = NULL,"
            " backend_pid = 0 WHERE id = %s",
            (first.attempt_id,),
        )
    again = load_dataset(dsn, folder, quiet=True)
    assert again.skipped
    assert [(a.id, a.status) for a in again.settled] == [(first.attempt_id, "committed")]
    assert [s for s, _ in _attempts(dsn)] == ["committed", "skipped"]


# ---- the folder: checked before any database work ---------------------------------------------
def _damage(folder: Path, how: str) -> None:
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if how == "garbage manifest":
        manifest_path.write_text("{this is not json")
    elif how == "manifest without files":
        del manifest["files"]
        manifest_path.write_text(json.dumps(manifest))
    elif how == "manifest of a list":
        manifest_path.write_text("[1, 2]")
    elif how == "tampered file":
        path = folder / "clearing_operations.pgcopy"
        data = bytearray(path.read_bytes())
        data[5000] ^= 0xFF  # same size, one byte flipped
        path.write_bytes(bytes(data))
    elif how == "not pgcopy":
        for t in TABLES:
            path = folder / f"{t}.pgcopy"
            path.write_bytes(os.urandom(path.stat().st_size))
    elif how == "no folder":
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("garbage manifest", r"manifest.json is not a JSON manifest \(.*\): generate it again"),
        ("manifest without files", r"manifest.json has no 'files': the folder is damaged"),
        ("manifest of a list", r"manifest.json is not a manifest \(a JSON object\)"),
        (
            "tampered file",
            r"clearing_operations.pgcopy is not the file its manifest names \(its SHA-256 differs\)",
        ),
        ("not pgcopy", r"packet_flow.pgcopy is not a binary COPY file"),
        ("no folder", r"is not a folder: generate one with `ibcbench generate --out"),
    ],
)
def test_a_damaged_folder_is_one_line_before_any_database_work(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str, message: str
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    _damage(copy, how)
    with pytest.raises(LoadError, match=message):
        load_dataset(NOWHERE, copy, quiet=True)  # no connection was tried
    assert main(["load", str(copy), "--dsn", NOWHERE]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ibcbench: error: "), err


def test_a_manifest_that_lies_about_rows_rolls_back_in_one_line(
    make_database, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    copy = tmp_path / "lie"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    told = manifest["rows"]["channel_performance"]
    manifest["rows"]["channel_performance"] = told + 7  # after the fact tables went in
    (copy / "manifest.json").write_text(json.dumps(manifest))
    dsn = make_database("lie")
    migrate_up(dsn)
    assert main(["load", str(copy), "--quiet", "--dsn", dsn]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"ibcbench: error: the manifest says {told + 7:,} rows for channel_performance but the "
        f"file holds {told:,}: the folder is damaged; generate it again\n"
    )
    assert _rows(dsn) == 0
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ibcbench_loads").fetchone() == (0,)
    assert _attempts(dsn) == [("failed", err.removeprefix("ibcbench: error: ").strip())]


# ---- a file changed after its checksum check --------------------------------------------------
def test_a_file_changed_while_the_load_waits_is_refused_and_nothing_committed(
    make_database, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The load checks the folder, then waits on its lock (held here); a letter of a text value in
    packet_flow.pgcopy changes meanwhile. The hash over the bytes sent catches it before COMMIT."""
    import shutil

    from ibcbench.faults.cases.security_secrets import flip_letter, put_back, waiting_on_advisory
    from ibcbench.locks import LOAD_LOCK

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    dsn = make_database("changed")
    migrate_up(dsn)
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    target = copy / "packet_flow.pgcopy"
    size = target.stat().st_size
    with ThreadPoolExecutor(1) as pool, psycopg.connect(dsn, autocommit=True) as hold:
        hold.execute("SELECT pg_advisory_lock(%s)", (LOAD_LOCK,))
        future: Future[int] = pool.submit(main, ["load", str(copy), "--quiet", "--dsn", dsn])
        deadline = time.monotonic() + 60
        while not waiting_on_advisory(dsn, str(dbname), LOAD_LOCK):
            assert time.monotonic() < deadline, "the load never waited on its lock"
            time.sleep(0.02)
        flipped = flip_letter(target)
        hold.execute("SELECT pg_advisory_unlock(%s)", (LOAD_LOCK,))
        assert future.result(timeout=60) == 1
    assert target.stat().st_size == size
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "packet_flow.pgcopy changed while it was being loaded" in err
    assert "nothing was committed" in err
    assert _rows(dsn) == 0
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ibcbench_loads").fetchone() == (0,)
    [(status, message)] = _attempts(dsn)
    assert status == "failed" and message and "changed while it was being loaded" in message
    # the folder as generated loads, and is not taken for one already loaded
    put_back(target, flipped)
    assert main(["load", str(copy), "--quiet", "--dsn", dsn]) == 0
    assert "already loaded" not in capsys.readouterr().err
    assert _attempts(dsn)[-1] == ("committed", None)
    assert _rows(dsn) == sum(json.loads((copy / "manifest.json").read_text())["rows"].values())
