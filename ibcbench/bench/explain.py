"""The workload's query plans under named configurations (an index strategy, server settings): captured
into run folders and diffed node by node."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ibcbench.bench.indexes import apply_strategy
from ibcbench.bench.workload import workload_queries
from ibcbench.db import connect
from ibcbench.plans import (
    Plan,
    PlanSetDiff,
    capture_plans,
    diff_plan_sets,
    render_diff_html,
    save_plans,
)

ANALYZED_TABLES = "packet_flow, clearing_operations, network_stats, relayer_performance"


@dataclass(frozen=True)
class PlanConfig:
    """A named configuration: an index strategy (or None to leave indexes as they are) and settings."""

    name: str
    index_strategy: str | None = None
    settings: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "index_strategy": self.index_strategy, "settings": self.settings}


def capture_configuration(
    dsn: str | None,
    queries: Iterable[tuple[str, str, Sequence[Any]]],
    *,
    config: PlanConfig,
    out_dir: Path | None = None,
) -> dict[str, Plan]:
    """Apply ``config``'s index strategy, ANALYZE, and capture every query under its settings; with
    ``out_dir``, save them as ``<out_dir>/<config>/*.json``."""
    if config.index_strategy is not None:
        apply_strategy(dsn, config.index_strategy)
    with connect(dsn) as conn:
        conn.execute(f"ANALYZE {ANALYZED_TABLES}")
        conn.commit()
    plans = capture_plans(dsn, queries, settings=config.settings)
    if out_dir is not None:
        save_plans(plans, out_dir / config.name, config=config.as_dict())
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
        with connect(dsn) as conn:
            queries = workload_queries(conn)
    try:
        pa = capture_configuration(dsn, queries, config=a, out_dir=out_dir)
        pb = capture_configuration(dsn, queries, config=b, out_dir=out_dir)
    finally:
        if restore_strategy and (a.index_strategy or b.index_strategy):
            apply_strategy(dsn, restore_strategy)
    result = diff_plan_sets(pa, pb, names=(a.name, b.name))
    if out_dir is not None:
        (out_dir / f"diff_{a.name}_vs_{b.name}.html").write_text(
            render_diff_html(result, title=f"{a.name} vs {b.name}", standalone=True)
        )
    return result
