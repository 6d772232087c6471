"""ibcbench.plans.diff: plans aligned node by node, changes ranked, a verdict per plan and per query."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibcbench.plans import diff_plan_sets, diff_plans, load_plan
from tests.plans.samples import ALL, fixture, timed


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_a_plan_diffed_with_itself_is_empty(path: Path) -> None:
    assert diff_plans(load_plan(path), load_plan(path)).is_empty


def test_an_index_change_is_found_and_ranked_first() -> None:
    before = fixture("wallet_history_no_indexes.json")
    after = fixture("wallet_history_service_indexes.json")
    d = diff_plans(before, after)
    assert d.verdict == "faster"
    assert (
        d.changes[0].kind == "node type"
        and "Seq Scan on clearing_operations" in d.changes[0].before
    )
    assert any(c.kind == "added" and "idx_clearing_operations_wallet" in c.after for c in d.changes)
    assert "node type" in d.explanation
    # the whole ranking, as recorded from these two fixtures
    assert [(c.kind, c.path) for c in d.changes] == [
        ("node type", "0/0/0"),
        ("added", "0/0/0/0"),
        ("buffers", "0/0/0"),
    ]
    assert d.explanation == (
        "node type at 0/0/0: Seq Scan on clearing_operations → Bitmap Heap Scan on clearing_operations"
    )


def test_plan_sets_give_a_verdict_per_query() -> None:
    a = {
        "wallet_history": fixture("wallet_history_no_indexes.json"),
        "join": fixture("hash_join.json"),
    }
    b = {
        "wallet_history": fixture("wallet_history_service_indexes.json"),
        "join": fixture("hash_join.json"),
    }
    result = diff_plan_sets(a, b, names=("none", "service"))
    summary = result.summary().set_index("query")
    assert (
        summary.loc["wallet_history", "verdict"] == "faster"
        and summary.loc["join", "verdict"] == "same"
    )
    assert result.changed() == ["wallet_history"]


def test_columnstore_chunk_scans_are_named_by_the_differ() -> None:
    compressed = fixture("hypertable_compressed_chunks.json")
    rowstore = fixture("hypertable_time_bounded.json")
    change = [c for c in diff_plans(rowstore, compressed).changes if c.kind == "columnstore"]
    assert [(c.before, c.after) for c in change] == [
        ("0 columnar chunk scans", "2 columnar chunk scans")
    ]
    assert diff_plans(compressed, compressed).changes == []


@pytest.mark.parametrize(
    ("before_ms", "after_ms", "verdict"),
    [
        # sub-millisecond: within 0.2 ms is noise even when it is +38%
        (0.52, 0.71, "same"),
        (0.52, 0.33, "same"),
        (0.52, 0.73, "slower"),
        (0.52, 0.31, "faster"),
        (0.0, 0.19, "same"),
        (0.0, 0.21, "slower"),
        # above 2 ms the 10% rule decides: 0.9 ms on 10 ms is noise, 1.1 ms is not
        (10.0, 10.9, "same"),
        (10.0, 9.1, "same"),
        (10.0, 11.1, "slower"),
        (10.0, 8.9, "faster"),
    ],
)
def test_plan_verdict_noise_boundaries(before_ms: float, after_ms: float, verdict: str) -> None:
    assert diff_plans(timed(before_ms), timed(after_ms)).verdict == verdict
