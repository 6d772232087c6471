"""Faults of the group ``security``: input that reaches SQL, paths or names.

- ``chunk_interval_injection``: notebook 05 with a chunk interval that closes its statement and
  creates ``public.injected_by_param``: refused in one line before any work; no such table in any
  database of the lab's server, no run folder.
- ``config_name_traversal``: notebook 04 with a plan configuration named ``../../../outside/...`` or
  by an absolute path: refused in one line; nothing written outside (or inside) the runs folder.
- ``report_outside_a_run``: ``report`` on a folder without a manifest, on one with a truncated
  manifest, and on a run folder whose ``report.html`` is a symlink to another file: one line each,
  no report written, the symlink's target unchanged.
- ``trailing_newline_names``: a ``--label`` and an ``IBCBENCH_CLUSTER`` ending in a newline: one
  line each, no run folder, no cluster of that name.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ibcbench.db import connect
from ibcbench.faults.lab import CliResult, FaultLab, nothing_written
from ibcbench.faults.registry import FaultOutcome, fault

GROUP = "security"
#: a chunk interval that closes the statement it is put in and creates a table of its own
INJECTION = (
    "x\t(a\tint);\tCREATE\tTABLE\tpublic.injected_by_param\t(x\tint);\tCREATE\tTABLE\t"
    "ibcbench_layouts.z"
)
INJECTED = "injected_by_param"


def injected_tables(lab: FaultLab) -> list[str]:
    """``database.schema.table`` of every table named :data:`INJECTED`, in every database."""
    with connect(lab.admin_dsn, autocommit=True) as admin:
        names = [
            r[0]
            for r in admin.execute(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
            ).fetchall()
        ]
    found = []
    for name in names:
        with connect(lab.dsn(name), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = %s",
                (INJECTED,),
            ).fetchall()
        found += [f"{name}.{r[0]}" for r in rows]
    return found


def _outcome(
    case: str, expected: str, results: list[CliResult], problems: list[str], runs_added: int
) -> FaultOutcome:
    if runs_added:
        problems = [*problems, f"{runs_added} run folder(s) made"]
    survived = all(r.one_line_error() for r in results) and not problems
    happened = "; ".join(r.brief() for r in results)
    if problems:
        happened += "; " + "; ".join(problems)
    return FaultOutcome(GROUP, case, expected, happened, survived, bad_input=True)


@fault(GROUP, fast=True)
def fault_chunk_interval_injection(lab: FaultLab) -> FaultOutcome:
    """Notebook 05 with SQL in a chunk interval."""
    with nothing_written(lab) as state:
        result = lab.cli(
            "run",
            "05_timescale.ipynb",
            "-p",
            "scale",
            lab.scale,
            "-p",
            "chunk_intervals",
            json.dumps([INJECTION]),
        )
    found = injected_tables(lab)
    problems = [f"tables made: {', '.join(found)}"] if found else []
    if "give a count and a unit" not in result.stderr:
        problems.append("the line does not say what an interval looks like")
    return _outcome(
        "security: SQL in notebook 05's chunk_intervals",
        "one line before any work: no table injected_by_param anywhere, no run folder",
        [result],
        problems,
        state["runs_added"],
    )


@fault(GROUP, fast=True)
def fault_config_name_traversal(lab: FaultLab) -> FaultOutcome:
    """Notebook 04 with a configuration name that leaves the run folder (relative, absolute)."""
    absolute = lab.workdir / "escaped_abs"
    names = {"relative": "../../../outside/escaped_a", "absolute": str(absolute)}
    before = {p for p in lab.workdir.rglob("*") if "escaped" in p.name or p.name == "outside"}
    results = []
    with nothing_written(lab) as state:
        for name in names.values():
            config = {"name": name, "index_strategy": "none", "settings": {}}
            results.append(
                lab.cli(
                    "run",
                    "04_query_plans.ipynb",
                    "-p",
                    "scale",
                    lab.scale,
                    "-p",
                    "config_a",
                    json.dumps(config),
                )
            )
    after = {p for p in lab.workdir.rglob("*") if "escaped" in p.name or p.name == "outside"}
    escaped = sorted(str(p) for p in after - before) + (
        [str(p) for p in (lab.runs_dir.parent / "outside",) if p.exists()]
    )
    problems = [f"written outside: {', '.join(escaped)}"] if escaped else []
    if not all("has name that is invalid" in r.stderr for r in results):
        problems.append("a line does not name the invalid configuration name")
    return _outcome(
        "security: notebook 04 configuration name with ../ or an absolute path",
        "one line each before any work; nothing written outside the run folder, no run folder",
        results,
        problems,
        state["runs_added"],
    )


def _run_folder_with_linked_report(lab: FaultLab, target: Path) -> Path:
    """A run folder as ``ibcbench run`` makes one, whose report.html is a symlink to ``target``."""
    folder = lab.runs_dir / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-linked"
    folder.mkdir()
    manifest = {"run_id": folder.name, "created_at": datetime.now(UTC).isoformat()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "report.html").symlink_to(target)
    return folder


@fault(GROUP, fast=True)
def fault_report_outside_a_run(lab: FaultLab) -> FaultOutcome:
    """``report`` on a folder that is not a run, and through a report.html symlink."""
    plain = lab.workdir / "not-a-run"
    plain.mkdir()
    (plain / "keep.txt").write_text("keep me\n")
    truncated = lab.workdir / "truncated-run"
    truncated.mkdir()
    (truncated / "manifest.json").write_text('{"run_id": "x", "crea')
    target = lab.workdir / "precious.txt"
    target.write_text("keep me\n")
    linked = _run_folder_with_linked_report(lab, target)
    with nothing_written(lab) as state:
        results = [lab.cli("report", str(folder)) for folder in (plain, truncated, linked)]
    problems = []
    for folder in (plain, truncated):
        if (folder / "report.html").exists():
            problems.append(f"{folder.name}/report.html written")
    if target.read_text() != "keep me\n":
        problems.append("the symlink's target was overwritten")
    if not (linked / "report.html").is_symlink():
        problems.append("the symlink was replaced")
    hints = ("is not a run folder", "cannot be read", "is a symlink")
    if not all(hint in r.stderr for hint, r in zip(hints, results, strict=True)):
        problems.append("a line does not say what is wrong")
    return _outcome(
        "security: report on a folder without a manifest, a truncated one, through a symlink",
        "one line each; no report.html written, the symlink's target unchanged",
        results,
        problems,
        state["runs_added"],
    )


@fault(GROUP, fast=True)
def fault_trailing_newline_names(lab: FaultLab) -> FaultOutcome:
    """A run label and a cluster name that end in a newline."""
    with nothing_written(lab) as state:
        results = [
            lab.cli("run", "02_index_strategies.ipynb", "--label", "nl\n"),
            lab.cli("db", "status", env=lab.env(IBCBENCH_CLUSTER="pn\n")),
            lab.cli("db", "up", env=lab.env(IBCBENCH_CLUSTER="pn\n")),
        ]
    problems = []
    made = [p.name for p in lab.home.iterdir() if p.name.startswith("pn")]
    if made:
        problems.append(f"cluster folders made: {made!r}")
    hints = ("run label 'nl\\n' is invalid", "cluster name 'pn\\n' is invalid")
    if hints[0] not in results[0].stderr or not all(hints[1] in r.stderr for r in results[1:]):
        problems.append("a line does not name the invalid name")
    return _outcome(
        "security: --label and IBCBENCH_CLUSTER ending in a newline",
        "one line each; no run folder, no cluster of that name",
        results,
        problems,
        state["runs_added"],
    )
