"""The fault suite (``ibcbench bench faults``): inject faults into the kit and report what happened.

Each fault is a function registered with :func:`fault`. It gets a :class:`FaultLab`, an embedded
cluster of the suite's own (its own home folder, port and runs folder, removed at the end), sets up
what it needs in databases of its own, injects the fault (a signal to the kit's process, a terminated
backend, a server restart, a full filesystem, a bad input, a second process at the same time) and
returns one :class:`FaultOutcome` per case: what was expected, what happened, the kit's rows before
and after, and the verdict. The kit's commands run as child processes (``python -m ibcbench.cli``),
as a user types them, so a signal hits the real process and its exit code and stderr are what a user
sees.

A case that is bad input (``bad_input=True``) must be rejected with one line on stderr that says
what to do next, before any work: no run folder, no rows. The suite's last line counts both kinds:
``faults: N injected, S survived, R rows lost, M bad inputs rejected``.

``fast`` faults run at every scale; the others (several minutes between them: whole notebook runs,
two ``run-all`` at once) only from ``small`` up. The test suite runs the fast ones at ``tiny``.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from psycopg import sql

from data_gen.tables import TABLES
from ibcbench.data.datasets import with_database
from ibcbench.data.ownership import create_kit_database
from ibcbench.db import connect
from ibcbench.errors import ConfigError, ServerError
from ibcbench.server import LocalServer
from ibcbench.settings import ServerSettings

#: scales the suite knows; tiny runs the fast faults only
FAULT_SCALES = ("tiny", "small", "default")
#: the kit's data tables whose rows the suite counts (the ones a load writes)
DATA_TABLES = (
    "clearing_operations",
    "network_stats",
    "channel_performance",
    "relayer_performance",
    "packet_flow",
)
#: no command the suite runs may take longer than this before it is killed (and the fault failed)
COMMAND_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class FaultOutcome:
    """One injected fault or bad input, and what the kit did about it."""

    group: str
    fault: str
    expected: str
    happened: str
    survived: bool
    rows_before: int | None = None
    rows_after: int | None = None
    #: rows of the kit's data that a fault lost (or doubled): compared with a clean reference
    rows_lost: int = 0
    #: from the fault to the kit working again (a rerun converged, the runner reconnected), seconds
    recovery_s: float | None = None
    bad_input: bool = False
    #: False when the fault could not be injected here (``happened`` says why): neither survived
    #: nor failed, and counted apart in the summary line
    ran: bool = True

    @property
    def verdict(self) -> str:
        if not self.ran:
            return "not run"
        return "survived" if self.survived else "FAILED"


@dataclass(frozen=True)
class Fault:
    name: str
    group: str
    fast: bool
    run: Callable[[FaultLab], FaultOutcome | Sequence[FaultOutcome]]


_REGISTRY: dict[str, Fault] = {}


def fault(group: str, *, fast: bool = True) -> Callable[[Callable], Callable]:
    """Register a fault function ``f(lab) -> FaultOutcome | list[FaultOutcome]`` under its name."""

    def register(func: Callable) -> Callable:
        name = func.__name__.removeprefix("fault_")
        if name in _REGISTRY:
            raise ValueError(f"fault {name!r} is registered twice")
        _REGISTRY[name] = Fault(name, group, fast, func)
        return func

    return register


def registered_faults() -> list[Fault]:
    """Every fault, in registration order; each group's faults live in a ``fault_*`` module of
    :mod:`ibcbench.suite`, imported here (registration happens on import)."""
    import importlib
    import pkgutil

    import ibcbench.suite as suite

    for info in sorted(pkgutil.iter_modules(suite.__path__), key=lambda m: m.name):
        if info.name.startswith("fault_"):
            importlib.import_module(f"{suite.__name__}.{info.name}")
    return list(_REGISTRY.values())


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

    def _up(self, attempts: int = 3) -> Any:
        """Start the lab's server; another cluster starting at the same moment can take the free
        port it chose (its log says 'Address already in use'), then it tries the next one."""
        for attempt in range(attempts):
            try:
                return self.server.up()
            except ServerError:
                try:
                    taken = "Address already in use" in self.settings.log_file.read_text()
                except OSError:
                    taken = False
                if not taken or attempt + 1 == attempts:
                    raise
                self.settings.log_file.unlink()
        raise AssertionError("unreachable")

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
            from ibcbench.migrate import migrate_up

            migrate_up(dsn)
        return dsn

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


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


# ---- the suite -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaultSuiteResult:
    scale: str
    outcomes: list[FaultOutcome]
    elapsed_s: float
    server: dict[str, Any] = field(default_factory=dict)
    #: the lab's workspace (its cluster, folders and runs), removed at the end unless kept
    workdir: Path | None = None

    @property
    def frame(self) -> pd.DataFrame:
        rows = [asdict(o) | {"verdict": o.verdict} for o in self.outcomes]
        columns = [f.name for f in FaultOutcome.__dataclass_fields__.values()] + ["verdict"]
        return pd.DataFrame(rows, columns=columns)

    @property
    def injected(self) -> list[FaultOutcome]:
        return [o for o in self.outcomes if o.ran and not o.bad_input]

    @property
    def bad_inputs(self) -> list[FaultOutcome]:
        return [o for o in self.outcomes if o.ran and o.bad_input]

    @property
    def not_run(self) -> list[FaultOutcome]:
        """Faults that could not be injected on this machine (say, mounting needs root)."""
        return [o for o in self.outcomes if not o.ran]

    @property
    def rows_lost(self) -> int:
        return sum(o.rows_lost for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """Every fault that ran survived (the summary line counts those that did not run)."""
        return all(o.survived for o in self.outcomes if o.ran)

    def longest_recovery(self) -> FaultOutcome | None:
        timed = [o for o in self.outcomes if o.recovery_s is not None]
        return max(timed, key=lambda o: o.recovery_s or 0.0) if timed else None

    def summary_line(self) -> str:
        return (
            f"faults: {len(self.injected)} injected, {sum(o.survived for o in self.injected)} "
            f"survived, {self.rows_lost} rows lost, "
            f"{sum(o.survived for o in self.bad_inputs)} bad inputs rejected"
            + (
                f" (of {len(self.bad_inputs)})"
                if not all(o.survived for o in self.bad_inputs)
                else ""
            )
            + (f", {len(self.not_run)} not run" if self.not_run else "")
        )

    def table(self, width: int = 60) -> str:
        """The fault table as text: fault, expected, happened, rows before/after, verdict."""
        frame = self.frame[
            ["group", "fault", "expected", "happened", "rows_before", "rows_after", "verdict"]
        ].copy()
        for column in ("expected", "happened"):
            frame[column] = frame[column].map(
                lambda s: s if len(s) <= width else s[: width - 1] + "…"
            )
        for column in ("rows_before", "rows_after"):
            frame[column] = frame[column].map(
                lambda v: "" if v is None or pd.isna(v) else f"{int(v):,}"
            )
        return frame.to_string(index=False)

    def key_numbers(self) -> dict[str, Any]:
        longest = self.longest_recovery()
        return {
            "faults_injected": len(self.injected),
            "faults_survived": sum(o.survived for o in self.injected),
            "faults_rows_lost": self.rows_lost,
            "faults_bad_inputs_rejected": sum(o.survived for o in self.bad_inputs),
            "faults_longest_recovery_s": round(longest.recovery_s or 0.0, 2) if longest else None,
        }

    def save(self, run_dir: Any) -> None:
        if run_dir is None:
            return
        from ibcbench.results.recorded import save_frame

        save_frame(self.frame, "faults", run_dir)


def suite_scale(dataset_scale: str) -> str:
    """The fault suite's scale for a run at ``dataset_scale``: tiny stays tiny (the fast faults), any
    larger run gets every fault at ``small`` (loads of a small folder are long enough to interrupt
    mid-COPY; larger ones add minutes and no new fault)."""
    return "tiny" if dataset_scale == "tiny" else "small"


def run_fault_suite(
    scale: str = "small",
    *,
    seed: int = 42,
    only: Sequence[str] | None = None,
    keep: bool = False,
    progress: Callable[[str], None] | None = print,
) -> FaultSuiteResult:
    """Run every fault for ``scale`` (at ``tiny`` the fast ones) on a lab cluster of its own.

    ``only`` names faults or groups to run. A fault function that raises counts as a failed fault
    (its error in the table), and the suite goes on with the next one.
    """
    if scale not in FAULT_SCALES:
        raise ConfigError(f"scale {scale!r} is unknown: use one of {', '.join(FAULT_SCALES)}")
    faults = registered_faults()
    if only:
        names = {f.name for f in faults} | {f.group for f in faults}
        unknown = sorted(set(only) - names)
        if unknown:
            raise ConfigError(
                f"no fault or group named {', '.join(unknown)}: choose from "
                f"{', '.join(sorted(names))}"
            )
        faults = [f for f in faults if f.name in only or f.group in only]
    if scale == "tiny":
        faults = [f for f in faults if f.fast]
    started = time.perf_counter()
    outcomes: list[FaultOutcome] = []
    with FaultLab(scale, seed=seed, keep=keep) as lab:
        for f in faults:
            t0 = time.perf_counter()
            try:
                got = f.run(lab)
                got_list = [got] if isinstance(got, FaultOutcome) else list(got)
            except Exception as exc:  # a broken fault is a failed fault, with the reason shown
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                got_list = [
                    FaultOutcome(
                        f.group,
                        f.name,
                        "the fault runs to its end",
                        f"the fault itself failed: {type(exc).__name__}: {detail}",
                        False,
                    )
                ]
            outcomes.extend(got_list)
            if progress:
                verdicts = ", ".join(o.verdict for o in got_list)
                progress(f"  {f.group}/{f.name}: {verdicts} ({time.perf_counter() - t0:.1f} s)")
        with connect(lab.admin_dsn) as conn:
            server = {
                "server_version": conn.info.server_version,
                "timescaledb": conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
                ).fetchone(),
            }
    return FaultSuiteResult(
        scale, outcomes, time.perf_counter() - started, server, workdir=lab.workdir
    )


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
