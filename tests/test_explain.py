"""ibcbench.bench.explain: the workload's plans under two named configurations (real server, tiny data)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from ibcbench.bench.explain import PlanConfig, compare_configurations
from ibcbench.plans import load_plans

pytestmark = pytest.mark.db


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
