"""Capturing EXPLAIN ANALYZE: a query or a list of queries, given by the caller, into plan objects and folders."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ibcbench.db import connect
from ibcbench.errors import PlanError
from ibcbench.inputs import SETTING_RE, check_name, safe_child
from ibcbench.plans.model import Plan, load_plan, plan_from_json


def capture_plan(
    conn: psycopg.Connection,
    query: str,
    params: Sequence[Any] = (),
    *,
    analyze: bool = True,
    wal: bool | None = None,
    settings: Mapping[str, str] | None = None,
) -> Plan:
    """EXPLAIN (ANALYZE, BUFFERS, SETTINGS, VERBOSE, FORMAT JSON) inside a transaction that is rolled back.

    ``settings`` are applied with SET LOCAL; writes are analyzed (with WAL figures) and undone.
    """
    is_write = query.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "MERGE")
    options = [
        "ANALYZE" if analyze else "ANALYZE false",
        "BUFFERS" if analyze else "BUFFERS false",
        "SETTINGS",
        "VERBOSE",
        "FORMAT JSON",
    ]
    if (wal if wal is not None else is_write) and analyze:
        options.insert(2, "WAL")
    with conn.transaction(force_rollback=True):
        for name, value in (settings or {}).items():
            if not SETTING_RE.fullmatch(name):
                raise PlanError(f"setting name {name!r} is invalid")
            conn.execute(
                sql.SQL("SELECT set_config({}, {}, true)").format(
                    sql.Literal(name), sql.Literal(str(value))
                )
            )
        row = conn.execute(
            sql.SQL(f"EXPLAIN ({', '.join(options)}) ") + sql.SQL(query), params
        ).fetchone()
    assert row is not None
    plan = plan_from_json(row[0])
    plan.query = query
    return plan


def capture_plans(
    dsn: str | None,
    queries: Iterable[tuple[str, str, Sequence[Any]]],
    *,
    settings: Mapping[str, str] | None = None,
) -> dict[str, Plan]:
    """EXPLAIN ANALYZE every (name, sql, params), each after one warming run, under ``settings``."""
    plans: dict[str, Plan] = {}
    with connect(dsn) as conn:
        for name, query, params in queries:
            capture_plan(conn, query, params, settings=settings)  # warm the cache once
            plans[name] = capture_plan(conn, query, params, settings=settings)
    return plans


def save_plans(
    plans: Mapping[str, Plan], folder: Path, *, config: Mapping[str, Any] | None = None
) -> None:
    """Each plan as ``<folder>/<name>.json``, and ``plans.json`` with the queries and ``config``;
    a plan name that is not a plain file name is refused before anything is written."""
    files = {name: f"{check_name(name, 'plan name')}.json" for name in plans}
    folder.mkdir(parents=True, exist_ok=True)
    for name, plan in plans.items():
        safe_child(folder, files[name]).write_text(
            json.dumps([plan.raw], indent=1, default=str) + "\n"
        )
    meta: dict[str, Any] = {"queries": {n: p.query for n, p in plans.items()}}
    if config is not None:
        meta["config"] = dict(config)
    safe_child(folder, "plans.json").write_text(json.dumps(meta, indent=1) + "\n")


def load_plans(folder: Path) -> dict[str, Plan]:
    """Plans saved by :func:`save_plans` (or any folder of .json/.txt plan files)."""
    if not folder.is_dir():
        raise PlanError(f"{folder} is not a folder of captured plans")
    plans = {
        p.stem: load_plan(p)
        for p in sorted(folder.iterdir())
        if p.suffix in (".json", ".txt") and p.name != "plans.json"
    }
    if not plans:
        raise PlanError(f"{folder} holds no plan files")
    return plans
