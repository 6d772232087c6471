"""Plan parsing and diffing on plans recorded from the test server (tests/fixtures/plans), and capture."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from ibcbench.bench.explain import PlanConfig, compare_configurations
from ibcbench.errors import PlanError
from ibcbench.plans import (
    capture_plan,
    diff_plan_sets,
    diff_plans,
    format_diff_text,
    format_plan_text,
    load_plan,
    load_plans,
    plot_diff,
    render_diff_html,
)

FIXTURES = Path(__file__).parent / "fixtures" / "plans"
ALL = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".json", ".txt"))


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_fixture_parses_and_diff_with_itself_is_empty(path: Path) -> None:
    plan = load_plan(path)
    assert plan.root.node_type and plan.total_ms > 0
    for node in plan.nodes():
        assert node.exclusive_ms >= 0 and node.exclusive_ms <= node.inclusive_ms + 1e-9
    assert diff_plans(plan, load_plan(path)).is_empty
    assert format_plan_text(plan).startswith("planning")


def test_times_rows_and_q_error() -> None:
    plan = load_plan(FIXTURES / "hash_join.json")
    join = next(n for n in plan.nodes() if n.node_type == "Hash Join")
    assert join.inclusive_ms == pytest.approx(join.raw["Actual Total Time"])
    assert join.exclusive_ms == pytest.approx(
        join.inclusive_ms - sum(c.inclusive_ms for c in join.children)
    )
    scan = next(n for n in plan.nodes() if n.relation == "clearing_operations")
    assert scan.rows_removed > 0
    # recorded in the fixture: the join planned 170 rows and returned 196, in one loop
    assert (join.est_rows, join.actual_rows, join.loops) == (170, 196, 1)
    assert join.q_error == pytest.approx(1.153, abs=0.001)


def test_parallel_workers_are_not_counted_twice() -> None:
    plan = load_plan(FIXTURES / "parallel_seq_scan.json")
    gather = next(n for n in plan.nodes() if n.node_type == "Gather")
    assert gather.raw["Workers Launched"] >= 1
    below = gather.children[0]
    assert below.loops == gather.raw["Workers Launched"] + 1
    assert (
        below.inclusive_ms <= gather.inclusive_ms
    )  # per-process wall time, not the sum over processes
    assert below.actual_rows == below.raw["Actual Rows"]  # per process and loop, as EXPLAIN says


_DAYS = tuple(f"partitioned_1_day_202601{d}00" for d in ("01", "02", "03"))


# recorded on the test server (PostgreSQL 15, TimescaleDB 2.28.3 for the new hypertable ones):
# *_startup_* with plan_cache_mode = force_generic_plan and a prepared statement (`created_at > $1`),
# so exclusion happens when the executor starts, not in the planner
@pytest.mark.parametrize(
    ("fixture", "partitions", "scanned", "excluded", "kinds"),
    [  # ChunkAppend kept all three chunks, ran one: the two others have zero loops
        (
            "hypertable_runtime_exclusion.json",
            (),
            1,
            2,
            (
                "Aggregate",
                "Aggregate",
                "Seq Scan",
                "Custom Scan",
                "Index Scan",
                "Index Scan",
                "Index Scan",
            ),
        ),
        # ChunkAppend dropped two chunks at start-up: they are not in the plan at all
        (
            "hypertable_startup_exclusion.json",
            (),
            1,
            2,
            ("Aggregate", "Custom Scan", "Aggregate", "Index Scan"),
        ),
        # the planner kept one chunk: no ChunkAppend, nothing excluded at execution
        ("hypertable_time_bounded.json", (), 1, 0, ("Aggregate", "Index Only Scan")),
        # PostgreSQL's own partition pruning at executor start-up: Append's "Subplans Removed"
        ("partitioned_startup_pruning.json", _DAYS, 1, 2, ("Aggregate", "Append", "Seq Scan")),
        # two compressed chunks (ColumnarIndexScan over compress_hyper_*) and a plain one: three
        (
            "hypertable_compressed_chunks.json",
            (),
            3,
            0,
            (
                "Aggregate",
                "Append",
                "Aggregate",
                "Custom Scan",
                "Seq Scan",
                "Aggregate",
                "Custom Scan",
                "Seq Scan",
                "Aggregate",
                "Seq Scan",
            ),
        ),
        ("wallet_history_no_indexes.json", (), 0, 0, ("Limit", "Sort", "Seq Scan")),
    ],
)
def test_chunks_scanned_and_excluded(
    fixture: str, partitions: tuple[str, ...], scanned: int, excluded: int, kinds: tuple[str, ...]
) -> None:
    plan = load_plan(FIXTURES / fixture)
    assert plan.partitions_scanned(partitions) == scanned
    assert plan.chunks_excluded == excluded
    assert plan.node_kinds == kinds
    assert plan.top_scan == next(k for k in kinds if "Scan" in k)


def test_partitions_count_as_chunks_only_when_named() -> None:
    plan = load_plan(FIXTURES / "partitioned_startup_pruning.json")
    assert plan.chunks_scanned == 0  # not TimescaleDB chunks
    assert plan.partitions_scanned(_DAYS) == 1 and plan.partitions_scanned(_DAYS[:2]) == 0
    runtime = load_plan(FIXTURES / "hypertable_runtime_exclusion.json")
    assert runtime.chunks_scanned == 1
    assert sum(n.is_chunk_scan for n in runtime.nodes()) == 3  # two of them never ran


def test_top_scan_indexes_and_buffers() -> None:
    service = load_plan(FIXTURES / "wallet_history_service_indexes.json")
    assert service.top_scan in ("Index Scan", "Bitmap Heap Scan")
    assert service.indexes and all(
        i.startswith("idx_clearing_operations_wallet") for i in service.indexes
    )
    root = json.loads((FIXTURES / "wallet_history_service_indexes.json").read_text())[0]["Plan"]
    assert (service.shared_hit, service.shared_read) == (
        root["Shared Hit Blocks"],
        root["Shared Read Blocks"],
    )
    none = load_plan(FIXTURES / "wallet_history_no_indexes.json")
    assert none.top_scan == "Seq Scan" and none.indexes == set()
    assert none.shared_hit + none.shared_read > service.shared_hit + service.shared_read


def test_text_plans_parse_like_json() -> None:
    text, js = load_plan(FIXTURES / "hash_join.txt"), load_plan(FIXTURES / "hash_join.json")
    assert [n.node_type for n in text.nodes()] == [n.node_type for n in js.nodes()]
    assert text.execution_ms == pytest.approx(7.934)
    assert text.root.shared_hit == 1478  # the "Planning:" buffers are not the root's
    assert diff_plans(text, text).is_empty


def test_unknown_fields_and_nodes_are_kept() -> None:
    raw = json.loads((FIXTURES / "hash_join.json").read_text())
    raw[0]["Plan"]["Node Type"] = "Future Node"
    raw[0]["Plan"]["Brand New Field"] = 42
    plan = load_plan(json.dumps(raw))
    assert plan.root.node_type == "Future Node" and plan.root.raw["Brand New Field"] == 42


def test_an_index_change_is_found_and_ranked_first() -> None:
    before = load_plan(FIXTURES / "wallet_history_no_indexes.json")
    after = load_plan(FIXTURES / "wallet_history_service_indexes.json")
    d = diff_plans(before, after)
    assert d.verdict == "faster"
    assert (
        d.changes[0].kind == "node type"
        and "Seq Scan on clearing_operations" in d.changes[0].before
    )
    assert any(c.kind == "added" and "idx_clearing_operations_wallet" in c.after for c in d.changes)
    assert "node type" in d.explanation
    assert "Seq Scan" in format_diff_text(d)
    page = render_diff_html(d, standalone=True)
    assert 'class="node changed"' in page and page.startswith("<!doctype html>")
    assert plot_diff(d).axes


def test_plan_sets_give_a_verdict_per_query(tmp_path: Path) -> None:
    a = {
        "wallet_history": load_plan(FIXTURES / "wallet_history_no_indexes.json"),
        "join": load_plan(FIXTURES / "hash_join.json"),
    }
    b = {
        "wallet_history": load_plan(FIXTURES / "wallet_history_service_indexes.json"),
        "join": load_plan(FIXTURES / "hash_join.json"),
    }
    result = diff_plan_sets(a, b, names=("none", "service"))
    summary = result.summary().set_index("query")
    assert (
        summary.loc["wallet_history", "verdict"] == "faster"
        and summary.loc["join", "verdict"] == "same"
    )
    assert result.changed() == ["wallet_history"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no plan node found"),
        ("[]", "empty EXPLAIN output"),
        ('{"x": 1}', "expected an object with a 'Plan' key"),
        ("[{", "plan JSON does not parse"),
    ],
)
def test_bad_input(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        load_plan(text)


@pytest.mark.db
def test_capture_rolls_back_writes_and_applies_settings(loaded_dsn: str) -> None:
    with psycopg.connect(loaded_dsn) as conn:
        before = conn.execute("SELECT count(*) FROM network_stats").fetchone()
        plan = capture_plan(
            conn, "INSERT INTO network_stats (chain_id, date) VALUES ('cap', '2026-01-01')"
        )
        assert conn.execute("SELECT count(*) FROM network_stats").fetchone() == before
        assert "WAL Records" in plan.root.raw
        plan = capture_plan(
            conn,
            "SELECT count(*) FROM clearing_operations WHERE status = %s",
            ("stuck",),
            settings={"random_page_cost": "1.1"},
        )
        assert plan.settings.get("random_page_cost") == "1.1"


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


def test_numbers_keep_their_digits_in_reports() -> None:
    from ibcbench.suite.report import _fmt

    assert _fmt(0.000231) == "0.000231"  # a 4000x speed-up as a ratio
    assert _fmt(1.23456) == "1.235"
    assert _fmt(12345.5) == "12,345.5"
    assert _fmt(float("nan")) == "–"
    assert _fmt(0.0) == "0"


def test_columnstore_chunk_scans_are_counted_and_named_by_the_differ() -> None:
    compressed = load_plan(FIXTURES / "hypertable_compressed_chunks.json")
    rowstore = load_plan(FIXTURES / "hypertable_time_bounded.json")
    assert compressed.columnar_scans == 2  # two ColumnarIndexScan nodes over compressed chunks
    assert rowstore.columnar_scans == 0
    change = [c for c in diff_plans(rowstore, compressed).changes if c.kind == "columnstore"]
    assert [(c.before, c.after) for c in change] == [
        ("0 columnar chunk scans", "2 columnar chunk scans")
    ]
    assert diff_plans(compressed, compressed).changes == []


def _timed(ms: float) -> object:
    raw = json.loads((FIXTURES / "hash_join.json").read_text())
    raw[0]["Execution Time"] = ms
    return load_plan(json.dumps(raw))


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
    assert diff_plans(_timed(before_ms), _timed(after_ms)).verdict == verdict  # type: ignore[arg-type]


def test_q_error_is_per_loop_on_a_nested_loop() -> None:
    # recorded on the tiny dataset: a LATERAL lookup of 40 wallets' latest timed-out packet
    plan = load_plan(FIXTURES / "nested_loop_lateral.json")
    memo = next(n for n in plan.nodes() if n.node_type == "Memoize")
    assert (memo.loops, memo.est_rows, memo.actual_rows) == (40, 1, 0)
    assert memo.q_error == 1.0  # 1 row planned, 0 found, in each of 40 loops: no misestimate
    sender = next(n for n in plan.nodes() if "sender" in (n.index or ""))
    assert (sender.loops, sender.est_rows, sender.actual_rows) == (38, 3, 49)
    assert sender.q_error == pytest.approx(16.333, abs=0.001)
    # the outer scan under its LIMIT (18,761 planned, 40 read), then the sender lookups
    assert [n for n, _ in plan.worst_estimates(2)][1] is sender


def test_the_biggest_change_figure_names_its_query_and_each_plans_own_nodes() -> None:
    from ibcbench.bench.explain import plot_biggest_change

    before = load_plan(FIXTURES / "wallet_history_no_indexes.json")
    after = load_plan(FIXTURES / "wallet_history_service_indexes.json")
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
