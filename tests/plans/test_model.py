"""ibcbench.plans.model: EXPLAIN output (JSON and text) parsed into plan trees, their times, rows and chunks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ibcbench.errors import PlanError
from ibcbench.plans import diff_plans, load_plan
from tests.plans.samples import ALL, FIXTURES, fixture


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_fixture_parses(path: Path) -> None:
    plan = load_plan(path)
    assert plan.root.node_type and plan.total_ms > 0
    for node in plan.nodes():
        assert node.exclusive_ms >= 0 and node.exclusive_ms <= node.inclusive_ms + 1e-9


def test_hash_join_parses_to_its_recorded_nodes() -> None:
    # the values recorded in tests/fixtures/plans/hash_join.json (an EXPLAIN from the test server)
    plan = fixture("hash_join.json")
    assert [
        (n.label, n.est_rows, n.actual_rows, n.loops, n.shared_hit, n.shared_read)
        for n in plan.nodes()
    ] == [
        ("Aggregate", 4, 1, 1, 1478, 0),
        ("Hash Join", 170, 196, 1, 1478, 0),
        ("Seq Scan on _hyper_1_1_chunk", 20_000, 20_000, 1, 926, 0),
        ("Hash", 159, 159, 1, 552, 0),
        ("Seq Scan on clearing_operations", 159, 159, 1, 552, 0),
    ]
    assert [round(n.exclusive_ms, 3) for n in plan.nodes()] == [0.026, 1.137, 4.723, 0.033, 2.989]
    assert (plan.total_ms, plan.planning_ms) == (8.958, 2.092)
    assert (plan.chunks_scanned, plan.chunks_excluded, plan.indexes) == (1, 0, set())


def test_times_rows_and_q_error() -> None:
    plan = fixture("hash_join.json")
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
    plan = fixture("parallel_seq_scan.json")
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
    ("fixture_name", "partitions", "scanned", "excluded", "kinds"),
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
    fixture_name: str,
    partitions: tuple[str, ...],
    scanned: int,
    excluded: int,
    kinds: tuple[str, ...],
) -> None:
    plan = fixture(fixture_name)
    assert plan.partitions_scanned(partitions) == scanned
    assert plan.chunks_excluded == excluded
    assert plan.node_kinds == kinds
    assert plan.top_scan == next(k for k in kinds if "Scan" in k)


def test_partitions_count_as_chunks_only_when_named() -> None:
    plan = fixture("partitioned_startup_pruning.json")
    assert plan.chunks_scanned == 0  # not TimescaleDB chunks
    assert plan.partitions_scanned(_DAYS) == 1 and plan.partitions_scanned(_DAYS[:2]) == 0
    runtime = fixture("hypertable_runtime_exclusion.json")
    assert runtime.chunks_scanned == 1
    assert sum(n.is_chunk_scan for n in runtime.nodes()) == 3  # two of them never ran


def test_columnstore_chunk_scans_are_counted() -> None:
    assert fixture("hypertable_compressed_chunks.json").columnar_scans == 2  # ColumnarIndexScan
    assert fixture("hypertable_time_bounded.json").columnar_scans == 0


def test_top_scan_indexes_and_buffers() -> None:
    service = fixture("wallet_history_service_indexes.json")
    assert service.top_scan in ("Index Scan", "Bitmap Heap Scan")
    assert service.indexes and all(
        i.startswith("idx_clearing_operations_wallet") for i in service.indexes
    )
    root = json.loads((FIXTURES / "wallet_history_service_indexes.json").read_text())[0]["Plan"]
    assert (service.shared_hit, service.shared_read) == (
        root["Shared Hit Blocks"],
        root["Shared Read Blocks"],
    )
    none = fixture("wallet_history_no_indexes.json")
    assert none.top_scan == "Seq Scan" and none.indexes == set()
    assert none.shared_hit + none.shared_read > service.shared_hit + service.shared_read


def test_text_plans_parse_like_json() -> None:
    text, js = fixture("hash_join.txt"), fixture("hash_join.json")
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


def test_q_error_is_per_loop_on_a_nested_loop() -> None:
    # recorded on the tiny dataset: a LATERAL lookup of 40 wallets' latest timed-out packet
    plan = fixture("nested_loop_lateral.json")
    memo = next(n for n in plan.nodes() if n.node_type == "Memoize")
    assert (memo.loops, memo.est_rows, memo.actual_rows) == (40, 1, 0)
    assert memo.q_error == 1.0  # 1 row planned, 0 found, in each of 40 loops: no misestimate
    sender = next(n for n in plan.nodes() if "sender" in (n.index or ""))
    assert (sender.loops, sender.est_rows, sender.actual_rows) == (38, 3, 49)
    assert sender.q_error == pytest.approx(16.333, abs=0.001)
    # the outer scan under its LIMIT (18,761 planned, 40 read), then the sender lookups
    assert [n for n, _ in plan.worst_estimates(2)][1] is sender


@pytest.mark.parametrize("name", ["wallet_history_no_indexes.json", "upsert_with_wal.json"])
def test_pasted_one_line_json_longer_than_a_file_name_parses(name: str) -> None:
    # one line of 256..4095 characters: too long for a file name, still a candidate path
    pasted = json.dumps(json.loads((FIXTURES / name).read_text()))
    assert 255 < len(pasted) < 4096 and "\n" not in pasted
    assert load_plan(pasted).node_kinds == fixture(name).node_kinds


def test_pasted_text_longer_than_a_file_name_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="no plan node found"):
        load_plan("SELECT " * 100)
