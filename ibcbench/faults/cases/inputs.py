"""Faults of the group ``inputs``: bad input at the command line and in notebook parameters, and
secrets.

Each bad input must be refused with one line on stderr, ``ibcbench: error: ...``, exit code 1 (the
parser's refusals too: the kit's parser prints one line pointing at ``--help`` and exits 1, not
argparse's usage block and 2), with what to do next in that line, before any work: no run folder, no
new database, no rows, no output folder. The DSN cases include a wrong password: the lab's
``pg_hba.conf`` gets a ``scram-sha-256`` line for a role of this group's own on 127.0.0.1, ahead of
the kit's own lines, removed when the lab closes. The secrets case runs a workload and a notebook through
a DSN with the right password and greps every file of their run folders (and the report) for it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from psycopg import sql

from ibcbench.db import connect
from ibcbench.faults.lab import CliResult, FaultLab, nothing_written
from ibcbench.faults.registry import FaultOutcome, fault

GROUP = "inputs"
ROLE = "inputs_pw_role"
PASSWORD = "inputs-Pw-5ecret-8841"  # the lab role's, gone when the lab closes
WRONG = "inputs-Wr0ng-7730"
CLOSED_PORT = "1"


def password_role(lab: FaultLab) -> str:
    """A superuser role with a password that the lab's server checks (scram) on 127.0.0.1; its
    DSN to the lab's main database. Set up once per lab, undone when the lab closes."""
    with connect(lab.admin_dsn, autocommit=True) as admin:
        port = admin.execute("SELECT current_setting('port')").fetchone()[0]  # type: ignore[index]
        dbname = admin.info.dbname
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
    dsn = f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{port}/{dbname}"
    if exists:  # set up by an earlier fault of this lab
        return dsn
    hba = lab.settings.data_dir / "pg_hba.conf"
    original = hba.read_text()
    with connect(lab.admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)
            )
        )

    def undo() -> None:
        hba.write_text(original)
        with connect(lab.admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_reload_conf()")
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))

    lab.on_close(undo)
    line = f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n"
    hba.write_text(line + original)  # ahead of the kit's lines: the first match decides
    with connect(lab.admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_reload_conf()")
    return dsn


def _databases(lab: FaultLab) -> set[str]:
    with connect(lab.admin_dsn, autocommit=True) as admin:
        return {r[0] for r in admin.execute("SELECT datname FROM pg_database").fetchall()}


def _cases(lab: FaultLab) -> list[tuple[str, tuple[str, ...], str]]:
    """(case, arguments, the hint its line must hold)."""
    right = password_role(lab)
    wrong = right.replace(PASSWORD, WRONG)
    closed = f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{CLOSED_PORT}/ibcbench"
    malformed = f"postgresql://{ROLE}:{PASSWORD}@[127.0.0.1/ibcbench"
    out = str(lab.workdir / "inputs-out")
    nb = "02_index_strategies.ipynb"
    scale_hint = "use one of tiny, small, default, large"
    return [
        ("scale run-all", ("run-all", "--scale", "bogus"), scale_hint),
        ("scale run -p", ("run", nb, "-p", "scale", "bogus"), scale_hint),
        ("scale seed", ("seed", "--scale", "bogus"), scale_hint),
        ("scale generate", ("generate", "--scale", "bogus", "--out", out), scale_hint),
        ("scale bench workload", ("bench", "workload", "--scale", "bogus"), scale_hint),
        ("scale bench fidelity", ("bench", "fidelity", "--scale", "bogus"), scale_hint),
        ("scale bench capacity", ("bench", "capacity", "--scale", "bogus"), scale_hint),
        ("--packets negative", ("seed", "--packets", "-5"), "--help"),
        ("--days zero", ("generate", "--days", "0", "--out", out), "--help"),
        ("--duration non-numeric", ("bench", "workload", "--duration", "abc"), "--help"),
        ("--clients zero", ("bench", "workload", "--clients", "0"), "--help"),
        ("--rate negative", ("bench", "workload", "--rate", "-3"), "--help"),
        ("--repeat zero", ("bench", "workload", "--repeat", "0"), "--help"),
        ("--rounds non-numeric", ("bench", "load", "--rounds", "x"), "--help"),
        ("--sizes zero and negative", ("bench", "capacity", "--sizes", "0,-1"), "--help"),
        ("--start not a date", ("seed", "--start", "notadate"), "give ISO 8601"),
        ("-p repetitions -3", ("run", nb, "-p", "repetitions", "-3"), "give one like"),
        ("-p unknown parameter", ("run", nb, "-p", "bogus", "1"), "its parameters are"),
        ("notebook missing", ("run", "notebooks/99_nothing.ipynb"), "give a notebook path"),
        ("DSN closed port", ("run-all", "--dsn", closed), "check DATABASE_URL/--dsn"),
        (  # the server's own refusal (the lab's scram line), then the kit's hint
            "DSN wrong password",
            ("bench", "workload", "--dsn", wrong),
            "password authentication failed",
        ),
        ("DSN malformed", ("run", nb, "--dsn", malformed), "fix DATABASE_URL or --dsn"),
    ]


@fault(GROUP, fast=True)
def fault_bad_inputs(lab: FaultLab) -> list[FaultOutcome]:
    """Every bad input of the list: one line, with its hint, nothing written."""
    outcomes: list[FaultOutcome] = []
    out = lab.workdir / "inputs-out"
    for case, args, hint in _cases(lab):
        databases = _databases(lab)
        with nothing_written(lab, lab.admin_dsn) as state:
            result = lab.cli(*args)
        line = result.error_lines[0] if result.error_lines else ""
        new_databases = sorted(_databases(lab) - databases)
        leaked = PASSWORD in result.stderr + result.stdout or WRONG in result.stderr
        written = (
            state["runs_added"] > 0
            or bool(new_databases)
            or out.exists()
            or state["rows_after"] != state["rows_before"]
        )
        survived = (
            result.one_line_error()
            and hint in line
            and ("DSN" not in case or "DATABASE_URL" in line)  # what to fix
            and not written
            and not leaked
        )
        happened = result.brief() + (
            f"; written: {state['runs_added']} run folder(s), databases {new_databases}, "
            f"output folder {out.exists()}"
            if written
            else ""
        )
        if leaked:
            happened += "; the password is on stderr"
        outcomes.append(
            FaultOutcome(
                GROUP,
                f"bad input: {case}",
                f"one line 'ibcbench: error: ...' with '{hint}', exit 1, nothing written",
                happened,
                survived,
                rows_before=state["rows_before"],
                rows_after=state["rows_after"],
                bad_input=True,
            )
        )
    return outcomes


def _traces(folder: Path, secret: str) -> list[str]:
    """Files below ``folder`` that hold ``secret`` (as bytes, anywhere in them)."""
    needle = secret.encode()
    hits = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with contextlib.suppress(OSError):
                if needle in path.read_bytes():
                    hits.append(str(path.relative_to(folder)))
    return hits


def _run_folder(result: CliResult) -> Path | None:
    for line in result.stdout.splitlines():
        if line.startswith("run folder: "):
            return Path(line.removeprefix("run folder: ").strip())
    return None


def _secret_run(lab: FaultLab, case: str, args: tuple[str, ...], *, report: bool) -> FaultOutcome:
    """Run ``args`` (through the password DSN) and grep its run folder (and its report)."""
    result = lab.cli(*args)
    folder = _run_folder(result)
    built = lab.cli("report", str(folder)) if folder and report else None
    hits = _traces(folder, PASSWORD) if folder else []
    streams = result.stdout + result.stderr + (built.stdout + built.stderr if built else "")
    on_streams = PASSWORD in streams
    report_ok = not report or (built is not None and built.returncode == 0)
    files = sum(1 for p in folder.rglob("*") if p.is_file()) if folder else 0
    survived = (
        result.returncode == 0 and folder is not None and report_ok and not hits and not on_streams
    )
    return FaultOutcome(
        GROUP,
        case,
        "the run"
        + (" and its report work" if report else " works")
        + " through the password DSN; no file and no output holds the password",
        f"{result.brief()}"
        + (f"; report {built.brief() if built else 'not built'}" if report else "")
        + f"; {files} files grepped, password in {hits or 'none'}"
        + ("; the password is on stdout/stderr" if on_streams else ""),
        survived,
    )


@fault(GROUP, fast=True)
def fault_secrets(lab: FaultLab) -> FaultOutcome:
    """A workload run through a DSN with the right password (the role's scram login): no file of
    its run folder holds the password, nor its output. (The wrong password's refusal is a bad
    input above, checked for the password on stderr too.)"""
    right = password_role(lab)
    args: tuple[str, ...] = ("bench", "workload", "--scale", lab.scale, "--seed", str(lab.seed))
    args += ("--engine", "python", "--clients", "1", "--duration", "1", "--dsn", right)
    return _secret_run(lab, "secrets: bench workload", args, report=False)


@fault(GROUP, fast=False)
def fault_secrets_notebook(lab: FaultLab) -> FaultOutcome:
    """Notebook 01 run through the password DSN, then its report: no file of the run folder (the
    executed notebook, its manifest, the report) holds the password."""
    right = password_role(lab)
    args: tuple[str, ...] = ("run", "01_generate_and_load.ipynb", "-p", "scale", lab.scale)
    args += ("-p", "seed", str(lab.seed), "--dsn", right)
    return _secret_run(lab, "secrets: run notebook 01 + report", args, report=True)
