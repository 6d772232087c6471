"""Safety: every command that drops, truncates or rewrites, pointed at a database the kit did not create.

A user's database (``FaultLab.user_database``: a table ``precious`` with a row) must survive each of
them: the command refuses in one line, the user's table and row are unchanged, and no
``schema_migrations`` table appears in it. The schema commands meet a user database that also has its
own ``network_stats`` (one of the kit's table names); the scratch database ``bench load`` drops, and the
dataset database the benchmarks build, meet a user's database of the same name; the benchmarks' scratch
schemas meet a user's schema of the same name (their functions are the library's: a service imports
them, no command points them at a database of its choice).

What in the package can drop, truncate or rewrite, and what reaches it (``grep -E 'DROP|TRUNCATE|DELETE|
ALTER|REINDEX|VACUUM'``):

- ``migrate``: TRUNCATE/DELETE of its own state tables, the down files, DROP INDEX CONCURRENTLY of an
  INVALID kit index: ``schema up|down|force`` (refuse a never-migrated database, a foreign object of a
  kit name, a version the kit did not apply);
- ``data.ownership.drop_kit_database``: ``bench load`` (``ibcbench_bench_load``, by the kit's comment);
- ``data.datasets``: DROP DATABASE ``ibcbench_<scale>_s<seed>`` (by its marker table): ``run``, ``run-all``,
  ``bench workload|fidelity|capacity``;
- scratch schemas ``ibcbench_layouts``, ``ibcbench_maint``, ``ibcbench_columnstore``, ``ibcbench_replicas``
  (by the kit's comment) and the scratch database ``ibcbench_replicas_scratch`` (by its marker table):
  notebooks 05, 06, 07 on the kit's dataset database;
- ``bench.indexes.apply_strategy``: DROP INDEX of the kit's index names on the kit's tables: notebook 02,
  on the dataset database;
- ``data.load``: merges (INSERT ... ON CONFLICT DO UPDATE) into the derived tables: ``seed``, ``load``
  (refuse a database without the kit's schema, or dirty);
- ``toolkit.monitoring`` (``emergency terminate|vacuum|reindex|checkpoint --execute``): refuses a database
  that is not the kit's unless ``--allow-foreign``; ``terminate`` only calls pg_terminate_backend on that
  database's backends, it writes nothing;
- ``bench.maintenance``: DELETE FROM cron.job_run_details of the kit's own job ids; ``bench.ingest``:
  ALTER TABLE inside its scratch database only; ``server``: ALTER EXTENSION timescaledb UPDATE in the
  kit's databases on ``db up``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from psycopg import sql

from ibcbench.db import connect
from ibcbench.errors import first_line
from ibcbench.faults.lab import CliResult, FaultLab
from ibcbench.faults.registry import FaultOutcome, fault

GROUP = "safety"


def _has_table(dsn: str, name: str) -> bool:
    try:
        with connect(dsn) as conn:
            return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None  # type: ignore[index]
    except Exception:
        return False


def _own_network_stats(dsn: str) -> None:
    """The user's own table of a kit name, with a row."""
    with connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE network_stats (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO network_stats VALUES (1, 'mine')")


def _network_stats_intact(dsn: str) -> bool:
    try:
        with connect(dsn) as conn:
            return conn.execute("SELECT id, note FROM network_stats").fetchall() == [(1, "mine")]
    except Exception:
        return False


def _outcome(
    lab: FaultLab,
    name: str,
    command: str,
    dsn: str,
    results: list[CliResult],
    *,
    network_stats: bool = False,
) -> FaultOutcome:
    refused = all(r.one_line_error() for r in results)
    intact = lab.user_data_intact(dsn) and (not network_stats or _network_stats_intact(dsn))
    migrated = _has_table(dsn, "schema_migrations")
    return FaultOutcome(
        GROUP,
        name,
        f"`{command}` on a user's database: refused in one line, its data intact, no "
        "schema_migrations created",
        "; ".join(r.brief() for r in results)
        + f"; user data {'intact' if intact else 'DAMAGED'}"
        + ("; schema_migrations CREATED" if migrated else ""),
        refused and intact and not migrated,
    )


class _Case(NamedTuple):
    """A command (or the sequence a user would type) on a user's database of its own."""

    case: str
    typed: str
    #: the user's database
    db: str
    #: whether it holds its own network_stats
    own: bool
    commands: list[list[str]]
    #: drop the database after
    drop: bool


def _destructive_cases(folder: str, dataset_seed: int) -> list[_Case]:
    """Set up: the cases, each a :class:`_Case`'s fields in order."""
    cases: list[tuple[str, str, str, bool, list[list[str]], bool]] = [
        # bench load drops and re-creates its scratch database: a user's of that name is refused
        (
            "bench_load_scratch_name",
            "bench load",
            "ibcbench_bench_load",
            False,
            [["bench", "load", "--packets", "2000", "--rounds", "1", "--scenarios", "overlap"]],
            True,
        ),
        ("schema_down_all", "schema down --all", "safety_down_all", True, [["schema", "down", "--all"]], False),
        ("schema_down_1", "schema down 1", "safety_down_1", True, [["schema", "down", "1"]], False),
        ("schema_force_1", "schema force 1", "safety_force_1", True, [["schema", "force", "1"]], False),
        # schema up refuses to adopt network_stats; then the advice the old code printed (force 3, down)
        (
            "schema_up_then_force_down",
            "schema up, then force 3 and down 3",
            "safety_schema_up",
            True,
            [["schema", "up"], ["schema", "force", "3"], ["schema", "down", "3"]],
            False,
        ),
        # load and seed into a user database (no kit schema) refuse before any COPY
        (
            "load_and_seed",
            "load, seed",
            "safety_load",
            True,
            [["load", folder, "--quiet"], ["seed", "--scale", "tiny", "--quiet"]],
            False,
        ),
        # the dataset database a benchmark builds (and drops when stale): a user's of that name
        (
            "dataset_name_taken",
            "bench workload",
            f"ibcbench_tiny_s{dataset_seed}",
            False,
            [
                ["bench", "workload", "--scale", "tiny", "--seed", str(dataset_seed), "--duration",
                 "1", "--engine", "python", "--clients", "1"],
            ],
            True,
        ),
        # emergency procedures and the job scheduler on a database that is not the kit's
        (
            "emergency_and_jobs",
            "emergency terminate/vacuum --execute, db jobs --scheduler",
            "safety_emergency",
            False,
            [
                ["emergency", "terminate", "--execute", "--min-duration-s", "0"],
                ["emergency", "vacuum", "precious", "--execute"],
                ["db", "jobs", "--scheduler", "timescaledb"],
            ],
            False,
        ),
    ]  # fmt: skip
    return [_Case(*c) for c in cases]


def _user_databases(lab: FaultLab, cases: list[_Case]) -> dict[str, str]:
    """Set up: each case's user database (with its own network_stats where the case says); DSNs."""
    dsns = {}
    for c in cases:
        dsns[c.case] = lab.user_database(c.db)
        if c.own:
            _own_network_stats(dsns[c.case])
    return dsns


def _run_side_by_side(
    lab: FaultLab, cases: list[_Case], dsns: dict[str, str]
) -> dict[str, list[CliResult]]:
    """Inject: each case's commands, four cases at a time; their results by case."""

    def run(c: _Case) -> list[CliResult]:
        # a command aimed at a database takes it by --dsn; the scratch-name ones use the server
        aimed = not c.db.startswith("ibcbench_")
        return [lab.cli(*argv, *(["--dsn", dsns[c.case]] if aimed else [])) for argv in c.commands]

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {c.case: pool.submit(run, c) for c in cases}
        return {case: future.result() for case, future in futures.items()}


@fault(GROUP, fast=True)
def destructive_commands_on_user_database(lab: FaultLab) -> list[FaultOutcome]:
    """Each command (or the sequence a user would type) on a user's database of its own; the cases
    run side by side (four at a time: their databases are apart, the commands mostly wait)."""
    cases = _destructive_cases(str(lab.folder()), dataset_seed=4242)
    dsns = _user_databases(lab, cases)
    results = _run_side_by_side(lab, cases, dsns)
    outcomes = [
        _outcome(lab, c.case, c.typed, dsns[c.case], results[c.case], network_stats=c.own)
        for c in cases
    ]
    for c in cases:
        if c.drop:
            lab.drop_database(c.db)
    return outcomes


def _scratch_calls() -> list[tuple[str, str, Callable[[str], Any]]]:
    from ibcbench.bench.columnstore import benchmark_columnstore
    from ibcbench.bench.maintenance import demonstrate_bloat
    from ibcbench.bench.replicas import ReplicaSetup, measure_recovery_conflicts
    from ibcbench.bench.timescale import benchmark_layouts, benchmark_retention, benchmark_rollups

    return [
        ("ibcbench_layouts", "benchmark_layouts", lambda dsn: benchmark_layouts(dsn)),
        ("ibcbench_layouts", "benchmark_rollups", lambda dsn: benchmark_rollups(dsn)),
        ("ibcbench_layouts", "benchmark_retention", lambda dsn: benchmark_retention(dsn)),
        ("ibcbench_maint", "demonstrate_bloat", lambda dsn: demonstrate_bloat(dsn)),
        ("ibcbench_columnstore", "benchmark_columnstore", lambda dsn: benchmark_columnstore(dsn)),
        (
            "ibcbench_replicas",
            "measure_recovery_conflicts",
            lambda dsn: measure_recovery_conflicts(ReplicaSetup(dsn, dsn, None)),
        ),
    ]


@fault(GROUP, fast=True)
def scratch_schemas_in_user_database(lab: FaultLab) -> list[FaultOutcome]:
    """The benchmarks' scratch schemas, met in a user's database as a schema of the user's own."""
    dsn = lab.user_database("safety_scratch")
    outcomes = []
    for schema, function, call in _scratch_calls():
        with connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (note text)").format(
                    sql.Identifier(schema, "mine")
                )
            )
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(schema, "mine")))
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES ('mine')").format(sql.Identifier(schema, "mine"))
            )
        error = ""
        with contextlib.suppress(Exception):
            try:
                call(dsn)
                error = "returned"
            except Exception as exc:
                first = first_line(exc, "")
                error = f"{type(exc).__name__}: {first}"
        with connect(dsn) as conn:
            kept = conn.execute(
                sql.SQL("SELECT note FROM {}").format(sql.Identifier(schema, "mine"))
            ).fetchall() == [("mine",)]
        # refused, or (the columnstore on a database without TimescaleDB) returned before any work
        refused = "was not created by ibcbench" in error or error == "returned"
        intact = kept and lab.user_data_intact(dsn)
        outcomes.append(
            FaultOutcome(
                GROUP,
                f"scratch_schema_{function}",
                f"{function}() on a user's database with its own schema {schema}: refused (or "
                "nothing to do), that schema and the user's data intact",
                f"{error[:200]}; schema {schema} {'intact' if kept else 'DAMAGED'}; user data "
                f"{'intact' if lab.user_data_intact(dsn) else 'DAMAGED'}",
                refused and intact,
            )
        )
    # the standby benchmark's scratch database, made by a user
    from ibcbench.bench.replicas import SCRATCH_DATABASE, ReplicaSetup, measure_load_lag

    dsn = lab.user_database(SCRATCH_DATABASE)
    try:
        measure_load_lag(ReplicaSetup(lab.admin_dsn, lab.admin_dsn, None))
        error = "returned"
    except Exception as exc:
        error = f"{type(exc).__name__}: {first_line(exc, '')}"
    intact = lab.user_data_intact(dsn)
    outcomes.append(
        FaultOutcome(
            GROUP,
            "scratch_database_measure_load_lag",
            f"measure_load_lag() with a user's database {SCRATCH_DATABASE}: refused, its data intact",
            f"{error[:200]}; user data {'intact' if intact else 'DAMAGED'}",
            "is not the kit's" in error and intact,
        )
    )
    lab.drop_database(SCRATCH_DATABASE)
    return outcomes
