"""Capturing EXPLAIN ANALYZE of the workload under named configurations, into run folders."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ibcbench.db import connect
from ibcbench.errors import PlanError
from ibcbench.plans.diff import PlanSetDiff, diff_plan_sets
from ibcbench.plans.model import Plan, load_plan, plan_from_json

_SETTING_RE = __import__("re").compile(r"^[a-z_][a-z0-9_.]*$")


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
    options = ["ANALYZE" if analyze else "ANALYZE false", "BUFFERS" if analyze else "BUFFERS false", "SETTINGS",
               "VERBOSE", "FORMAT JSON"]  # fmt: skip
    if (wal if wal is not None else is_write) and analyze:
        options.insert(2, "WAL")
    with conn.transaction(force_rollback=True):
        for name, value in (settings or {}).items():
            if not _SETTING_RE.match(name):
                raise PlanError(f"setting name {name!r} is invalid")
            conn.execute(
                sql.SQL("SELECT set_config({}, {}, true)").format(
                    sql.Literal(name), sql.Literal(str(value))
                )
            )
        row = conn.execute(
            sql.SQL(f"EXPLAIN ({', '.join(options)}) ") + sql.SQL(query), params
        ).fetchone()  # type: ignore[operator, arg-type]
    assert row is not None
    plan = plan_from_json(row[0])
    plan.query = query
    return plan


@dataclass(frozen=True)
class PlanConfig:
    """A named configuration: an index strategy (or None to leave indexes as they are) and settings."""

    name: str
    index_strategy: str | None = None
    settings: dict[str, str] = field(default_factory=dict)


def capture_plans(
    dsn: str | None,
    queries: Iterable[tuple[str, str, Sequence[Any]]],
    *,
    config: PlanConfig,
    out_dir: Path | None = None,
) -> dict[str, Plan]:
    """Capture every (name, sql, params) under ``config``; with ``out_dir``, save <out_dir>/<config>/*.json."""
    if config.index_strategy is not None:
        from ibcbench.indexes import apply_strategy

        apply_strategy(dsn, config.index_strategy)
    plans: dict[str, Plan] = {}
    with connect(dsn) as conn:
        conn.execute("ANALYZE packet_flow, clearing_operations, network_stats, relayer_performance")
        conn.commit()
        for name, query, params in queries:
            capture_plan(conn, query, params, settings=config.settings)  # warm the cache once
            plans[name] = capture_plan(conn, query, params, settings=config.settings)
    if out_dir is not None:
        save_plans(plans, out_dir / config.name, config=config)
    return plans


def save_plans(
    plans: Mapping[str, Plan], folder: Path, *, config: PlanConfig | None = None
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, plan in plans.items():
        (folder / f"{name}.json").write_text(json.dumps([plan.raw], indent=1, default=str) + "\n")
    meta = {"queries": {n: p.query for n, p in plans.items()}}
    if config is not None:
        meta["config"] = {
            "name": config.name,
            "index_strategy": config.index_strategy,
            "settings": config.settings,
        }
    (folder / "plans.json").write_text(json.dumps(meta, indent=1) + "\n")


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


def compare_configurations(
    dsn: str | None,
    a: PlanConfig,
    b: PlanConfig,
    *,
    queries: Sequence[tuple[str, str, Sequence[Any]]] | None = None,
    out_dir: Path | None = None,
    restore_strategy: str | None = "seed",
) -> PlanSetDiff:
    """Capture the workload under two configurations and diff them; the seed indexes are restored after."""
    if queries is None:
        from ibcbench.workload import workload_queries

        with connect(dsn) as conn:
            queries = workload_queries(conn)
    try:
        pa = capture_plans(dsn, queries, config=a, out_dir=out_dir)
        pb = capture_plans(dsn, queries, config=b, out_dir=out_dir)
    finally:
        if restore_strategy and (a.index_strategy or b.index_strategy):
            from ibcbench.indexes import apply_strategy

            apply_strategy(dsn, restore_strategy)
    result = diff_plan_sets(pa, pb, names=(a.name, b.name))
    if out_dir is not None:
        from ibcbench.plans.render import render_diff_html

        (out_dir / f"diff_{a.name}_vs_{b.name}.html").write_text(
            render_diff_html(result, title=f"{a.name} vs {b.name}", standalone=True)
        )
    return result
