"""The fault suite's laboratory: an embedded cluster and a workspace of its own.

:class:`FaultLab` starts a cluster in a temporary home (its own port and runs folder, removed at
the end), runs the kit's commands as child processes (``python -m ibcbench.cli``), as a user types
them, so a signal hits the real process and its exit code and stderr are what a user sees, and
measures what the kit's tables hold (an order-independent digest against a clean reference).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from data_gen.tables import TABLES
from ibcbench.data.ownership import create_kit_database
from ibcbench.db import connect
from ibcbench.dsn import with_database
from ibcbench.errors import ConfigError, ServerError
from ibcbench.infra.server import LocalServer
from ibcbench.settings import ServerSettings
from ibcbench.signals import default_sigint

#: scales the suite knows; tiny runs the fast faults only
FAULT_SCALES = ("tiny", "small", "default")
#: the kit's data tables whose rows the suite counts (the ones a load writes)
DATA_TABLES = tuple(TABLES)
#: no command the suite runs may take longer than this before it is killed (and the fault failed)
COMMAND_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def one_line_error(self) -> bool:
        """Exit code 1 and exactly one line on stderr, the kit's ``ibcbench: error: ...``."""
        lines = self.error_lines
        return self.returncode == 1 and len(lines) == 1 and lines[0].startswith("ibcbench: error: ")

    def brief(self) -> str:
        last = self.error_lines[-1] if self.error_lines else ""
        return f"exit {self.returncode}" + (f", {last[:160]}" if last else "")


class FaultLab:
    """An embedded cluster and a workspace of the suite's own; everything goes when it closes."""

    def __init__(self, scale: str = "small", *, seed: int = 42, keep: bool = False) -> None:
        if scale not in FAULT_SCALES:
            raise ConfigError(f"scale {scale!r} is unknown: use one of {', '.join(FAULT_SCALES)}")
        self.scale = scale
        self.seed = seed
        self.keep = keep
        base = Path(os.environ.get("IBCBENCH_FAULTS_TMP") or "/var/tmp")
        if os.geteuid() != 0:
            base = Path(tempfile.gettempdir())
        self.workdir = Path(tempfile.mkdtemp(prefix="ibcbench-faults.", dir=base))
        os.chmod(self.workdir, 0o755)  # the unprivileged server user reaches its cluster below it
        self.home = self.workdir / "home"
        self.runs_dir = self.workdir / "runs"
        self.runs_dir.mkdir()
        self.settings = ServerSettings(home=self.home, name="faults", shared_buffers_mb=256)
        self.server = LocalServer(self.settings)
        self._cleanups: list[Callable[[], None]] = []
        self._folders: dict[tuple[str, bool], Path] = {}
        self._memo: dict[str, Any] = {}
        self.admin_dsn = ""

    # ---- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> FaultLab:
        try:
            result = self._up()
        except BaseException:
            self.close()
            raise
        self.admin_dsn = result.state.url
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _up(self) -> Any:
        return start_server(self.server)

    def on_close(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` when the lab closes (last registered, first run)."""
        self._cleanups.append(cleanup)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        self._cleanups.clear()
        with contextlib.suppress(Exception):
            self.server.down()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- the kit as a user runs it -------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        """The environment of the kit's commands: this lab's home, cluster and runs folder."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.pop("DATABASE_URL", None)
        env.update(
            IBCBENCH_HOME=str(self.home),
            IBCBENCH_CLUSTER=self.settings.name,
            IBCBENCH_RUNS_DIR=str(self.runs_dir),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ibcbench.cli", *args]

    def cli(
        self, *args: str, timeout: float = COMMAND_TIMEOUT_S, env: dict[str, str] | None = None
    ) -> CliResult:
        """Run ``ibcbench ARGS`` to its end (killed after ``timeout`` seconds)."""
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                self.command(*args),
                capture_output=True,
                text=True,
                env=env or self.env(),
                cwd=self.workdir,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            return CliResult(
                tuple(args),
                -9,
                _text(exc.stdout),
                _text(exc.stderr) + f"\n(killed after {timeout:g} s)",
                time.perf_counter() - started,
            )
        return CliResult(
            tuple(args), proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started
        )

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``ibcbench ARGS`` in a process group of its own (signals reach its children)."""
        return subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or self.env(),
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=default_sigint,
        )

    @staticmethod
    def finish(
        proc: subprocess.Popen[str], args: Sequence[str], started: float, timeout: float = 120
    ) -> CliResult:
        """Wait for a spawned command (killed with its group after ``timeout``)."""
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            err += f"\n(killed after {timeout:g} s)"
        return CliResult(tuple(args), proc.returncode, out, err, time.perf_counter() - started)

    # ---- databases -----------------------------------------------------------------------
    def dsn(self, dbname: str) -> str:
        return with_database(self.admin_dsn, dbname)

    def new_database(self, name: str, *, schema: bool = True) -> str:
        """A kit database ``name`` (marked as the kit's), with the schema unless ``schema=False``."""
        with connect(self.admin_dsn, autocommit=True) as admin:
            create_kit_database(admin, name)
        dsn = self.dsn(name)
        if schema:
            from ibcbench.infra.migrate import migrate_up

            migrate_up(dsn)
        return dsn

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, its sessions ended (``WITH (FORCE)``)."""
        with connect(self.admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def user_database(self, name: str) -> str:
        """A database a user made by hand (no kit mark), holding a table ``precious`` with a row."""
        with connect(self.admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        dsn = self.dsn(name)
        with connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE precious (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO precious VALUES (1, 'keep me')")
        return dsn

    def user_data_intact(self, dsn: str) -> bool:
        """Whether :meth:`user_database`'s table and row are still there, unchanged."""
        try:
            with connect(dsn) as conn:
                return conn.execute("SELECT id, note FROM precious").fetchall() == [(1, "keep me")]
        except Exception:
            return False

    def folder(self, *, incidents: bool = True) -> Path:
        """A generated dataset folder at the lab's scale and seed (generated once, then shared)."""
        key = (self.scale, incidents)
        if key not in self._folders:
            out = self.workdir / "folders" / f"{self.scale}-{'inc' if incidents else 'plain'}"
            args = ["generate", "--scale", self.scale, "--seed", str(self.seed), "--out", str(out)]
            result = self.cli(*args, "--quiet", *([] if incidents else ["--no-incidents"]))
            if result.returncode != 0:
                raise RuntimeError(f"generate failed: {result.stderr.strip()}")
            self._folders[key] = out
        return self._folders[key]

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per lab under ``key`` (a reference database several faults compare with)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def copy_folder(self, name: str, *, incidents: bool = True) -> Path:
        """A private copy of :meth:`folder`, to damage."""
        target = self.workdir / "copies" / name
        shutil.copytree(self.folder(incidents=incidents), target)
        return target

    # ---- what the kit's tables hold ------------------------------------------------------
    def rows(self, dsn: str) -> int:
        """Rows in the kit's data tables (missing tables count 0)."""
        return digest_rows(self.digest(dsn))

    def digest(self, dsn: str, *, ignore: Sequence[str] = ()) -> dict[str, tuple[int, str]]:
        """Per data table: row count and an order-independent md5 of its rows, over the columns the
        generator writes (not the server's defaults: the derived tables' identity ids and their
        ``created_at``/``updated_at DEFAULT now()`` differ between two clean loads).

        ``ignore`` leaves more columns out, as ``table.column`` (or ``column`` for every table)."""
        out: dict[str, tuple[int, str]] = {}
        with connect(dsn) as conn:
            for table in DATA_TABLES:
                if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:  # type: ignore[index]
                    out[table] = (0, "")
                    continue
                skip = {
                    c.split(".", 1)[-1] for c in ignore if "." not in c or c.startswith(f"{table}.")
                }
                columns = sql.SQL(", ").join(
                    sql.Identifier(c) for c, _ in TABLES[table] if c not in skip
                )
                count, digest = conn.execute(
                    sql.SQL(
                        "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') "
                        "FROM (SELECT md5(ROW({})::text) AS h FROM {}) s"
                    ).format(columns, sql.Identifier(table))
                ).fetchone()  # type: ignore[misc]
                out[table] = (int(count), str(digest))
        return out

    @staticmethod
    def digest_difference(got: dict[str, tuple[int, str]], want: dict[str, tuple[int, str]]) -> int:
        """Rows lost or extra against a reference digest (a table of equal count but other rows
        counts all its rows)."""
        diff = 0
        for table, (count, digest) in want.items():
            g_count, g_digest = got.get(table, (0, ""))
            if g_count != count:
                diff += abs(count - g_count)
            elif g_digest != digest:
                diff += count
        return diff

    # ---- the server ----------------------------------------------------------------------
    def restart(self, mode: str = "fast") -> float:
        """Restart the lab's server with ``pg_ctl restart -m MODE``; returns the seconds it took."""
        started = time.perf_counter()
        self.server.restart(mode)
        return time.perf_counter() - started

    def backend_pids(self, dbname: str, *, like: str = "%") -> list[int]:
        """Client backends connected to ``dbname`` whose query matches ``like``."""
        with connect(self.admin_dsn, autocommit=True) as admin:
            return [
                r[0]
                for r in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = "
                    "'client backend' AND pid <> pg_backend_pid() AND query ILIKE %s",
                    (dbname, like),
                ).fetchall()
            ]

    @staticmethod
    def wait_for(predicate: Callable[[], Any], *, timeout: float = 60, every: float = 0.05) -> Any:
        """Poll ``predicate`` until it returns something truthy; None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(every)
        return None

    def run_folders(self) -> list[Path]:
        return sorted(p for p in self.runs_dir.iterdir() if p.is_dir())


def digest_rows(digest: dict[str, tuple[int, str]]) -> int:
    """The rows a :meth:`FaultLab.digest` counted, over every data table."""
    return sum(count for count, _ in digest.values())


def loads_logged(dsn: str) -> int:
    """Rows of the kit's load log (``ibcbench_loads``) in ``dsn``: one per committed load."""
    with connect(dsn) as conn:
        return int(conn.execute("SELECT count(*) FROM ibcbench_loads").fetchone()[0])  # type: ignore[index]


def waiting_on_advisory(admin_dsn: str, dbname: str, key: int) -> int:
    """Sessions of ``dbname`` queued (not granted) on the advisory lock ``key``."""
    with connect(admin_dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s"
            " AND l.classid = 0 AND l.objid = %s",
            (dbname, key),
        ).fetchone()
    return int(row[0]) if row else 0


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


@contextlib.contextmanager
def nothing_written(lab: FaultLab, dsn: str | None = None) -> Iterator[dict[str, Any]]:
    """Around a bad input: counts run folders (and ``dsn``'s rows) before and after.

    The yielded dict gets ``runs_added`` and, with a ``dsn``, ``rows_before``/``rows_after``."""
    before_runs = set(lab.run_folders())
    state: dict[str, Any] = {}
    if dsn:
        state["rows_before"] = lab.rows(dsn)
    yield state
    state["runs_added"] = len(set(lab.run_folders()) - before_runs)
    if dsn:
        state["rows_after"] = lab.rows(dsn)


def start_server(server: LocalServer, attempts: int = 3) -> Any:
    """``server.up()``; another cluster starting at the same moment (the tests beside the suite)
    can take the free port it chose (its log says 'Address already in use'), then it tries the
    next one."""
    log = server.settings.log_file
    for attempt in range(attempts):
        try:
            return server.up()
        except ServerError:
            try:
                taken = "Address already in use" in log.read_text()
            except OSError:
                taken = False
            if not taken or attempt + 1 == attempts:
                raise
            log.unlink()
    raise AssertionError("unreachable")
