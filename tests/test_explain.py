"""ibcbench.bench.explain: the workload's plans under two named configurations (real server, tiny data)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from ibcbench.bench.explain import PlanConfig, compare_configurations
from ibcbench.plans import load_plans
from ibcbench.plans.diff import diff_plan_sets
from ibcbench.plans.model import load_plan

PLANS = Path(__file__).parent / "fixtures" / "plans"


@pytest.mark.db
def test_compare_configurations_saves_plans_and_restores_indexes(
    loaded_dsn: str, tmp_path: Path
) -> None:
    from ibcbench.bench.indexes import STRATEGIES, present_kit_indexes

    queries = [
        (
            "wallet",
            "SELECT * FROM clearing_operations WHERE wallet_address = %s ORDER BY created_at DESC LIMIT 5",
            ("x",),
        )
    ]
    result = compare_configurations(
        loaded_dsn,
        PlanConfig("none", "none"),
        PlanConfig("service", "service"),
        queries=queries,
        out_dir=tmp_path,
    )
    assert result.changed() == ["wallet"]
    assert (tmp_path / "none" / "wallet.json").exists() and (
        tmp_path / "diff_none_vs_service.html"
    ).exists()
    assert set(load_plans(tmp_path / "service")) == {"wallet"}
    with psycopg.connect(loaded_dsn) as conn:
        assert present_kit_indexes(conn) == {d.name for d in STRATEGIES["service"].indexes}


def test_the_biggest_change_figure_names_its_query_and_each_plans_own_nodes() -> None:
    from ibcbench.bench.explain import plot_biggest_change

    before = load_plan(PLANS / "wallet_history_no_indexes.json")
    after = load_plan(PLANS / "wallet_history_service_indexes.json")
    result = diff_plan_sets(
        {"wallet_history": before}, {"wallet_history": after}, names=("none", "service")
    )
    ax = plot_biggest_change(result).axes[0]
    assert ax.get_title().startswith("wallet_history: faster, ")
    assert "(none)" in ax.get_title() and "(service)" in ax.get_title()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    half = len(labels) // 2
    before_nodes = {n.label[:55] for n in before.nodes()} | {"(none)"}
    after_nodes = {n.label[:55] for n in after.nodes()} | {"(none)"}
    assert set(labels[:half]) <= before_nodes and set(labels[half:]) <= after_nodes
    assert "Seq Scan" in " ".join(labels[:half])  # the scan the indexes removed, on its own bar
