"""ibcbench.plans.capture: EXPLAIN ANALYZE captured on the test server, and folders of saved plans."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from ibcbench.errors import ConfigError, PlanError
from ibcbench.plans import capture_plan, capture_plans, load_plans, save_plans
from tests.plans.samples import FIXTURES, fixture


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
def test_a_plan_captured_from_the_tiny_dataset(loaded_dsn: str) -> None:
    # tiny, seed 42 (the loaded_dsn fixture), recorded from capture_plan on the test server:
    # 22 chains' network_stats rows, 34 stuck clearing operations
    with psycopg.connect(loaded_dsn) as conn:
        plan = capture_plan(conn, "SELECT count(*) FROM network_stats")
        stuck = capture_plan(
            conn, "SELECT count(*) FROM clearing_operations WHERE status = %s", ("stuck",)
        )
    assert plan.query == "SELECT count(*) FROM network_stats"
    assert [(n.label, n.est_rows, n.actual_rows, n.loops) for n in plan.nodes()] == [
        ("Aggregate", 1, 1, 1),
        ("Seq Scan on network_stats", 22, 22, 1),
    ]
    assert plan.root.raw["Output"] == ["count(*)"]  # VERBOSE
    assert "WAL Records" not in plan.root.raw  # a read gets no WAL figures
    assert plan.total_ms > 0 and plan.shared_hit + plan.shared_read > 0  # ANALYZE, BUFFERS
    # the scan's kind follows the indexes and the visibility map; the rows it found do not
    (scan,) = [n for n in stuck.nodes() if n.relation == "clearing_operations"]
    assert (scan.actual_rows, stuck.root.actual_rows) == (34, 1)


@pytest.mark.db
def test_capture_without_analyze_runs_nothing(loaded_dsn: str) -> None:
    with psycopg.connect(loaded_dsn) as conn:
        plan = capture_plan(conn, "SELECT count(*) FROM network_stats", analyze=False)
    assert plan.root.actual_rows is None and plan.root.node_type == "Aggregate"


@pytest.mark.db
@pytest.mark.parametrize(
    "name", ["work mem", "work_mem; RESET ALL", "Work_mem", "9lives", "x" * 64, ""]
)
def test_setting_names_are_validated(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn) as conn:
        work_mem = conn.execute("SHOW work_mem").fetchone()
        with pytest.raises(PlanError, match=r"setting name .* is invalid"):
            capture_plan(conn, "SELECT 1", settings={"work_mem": "1MB", name: "1"})
        # the settings applied before the bad name were rolled back with the rest
        assert conn.execute("SHOW work_mem").fetchone() == work_mem


@pytest.mark.db
def test_capture_plans_names_each_query(loaded_dsn: str) -> None:
    plans = capture_plans(
        loaded_dsn,
        [
            ("count", "SELECT count(*) FROM network_stats", ()),
            ("one", "SELECT chain_id FROM network_stats WHERE chain_id = %s", ("osmosis-1",)),
        ],
        settings={"work_mem": "8MB"},
    )
    assert list(plans) == ["count", "one"]
    assert plans["one"].root.actual_rows == 1  # one row per chain
    assert {p.settings.get("work_mem") for p in plans.values()} == {"8MB"}


def test_saved_plans_load_back_with_their_queries(tmp_path: Path) -> None:
    plans = {
        "join": fixture("hash_join.json"),
        "wallet": fixture("wallet_history_no_indexes.json"),
    }
    plans["join"].query = "SELECT 1"
    save_plans(plans, tmp_path / "set", config={"indexes": "none"})
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == [
        "join.json",
        "plans.json",
        "wallet.json",
    ]
    meta = json.loads((tmp_path / "set" / "plans.json").read_text())
    assert meta == {
        "queries": {"join": "SELECT 1", "wallet": plans["wallet"].query},
        "config": {"indexes": "none"},
    }
    back = load_plans(tmp_path / "set")
    assert list(back) == ["join", "wallet"]
    assert [n.label for n in back["join"].nodes()] == [n.label for n in plans["join"].nodes()]
    assert back["wallet"].total_ms == plans["wallet"].total_ms == 2.659


def test_a_folder_of_fixtures_loads_by_file_stem() -> None:
    plans = load_plans(FIXTURES)
    assert "hash_join" in plans and "wallet_history_no_indexes" in plans
    assert len(plans) == len({p.stem for p in FIXTURES.iterdir()})  # .json and .txt of one stem


@pytest.mark.parametrize("name", ["../out", "a/b", "", ".hidden"])
def test_a_plan_name_that_is_not_a_file_name_writes_nothing(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="plan name .* is invalid"):
        save_plans(
            {"ok": fixture("hash_join.json"), name: fixture("hash_join.json")}, tmp_path / "x"
        )
    assert not (tmp_path / "x").exists()


def test_loading_a_folder_that_holds_no_plans(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="is not a folder of captured plans"):
        load_plans(tmp_path / "missing")
    (tmp_path / "plans.json").write_text("{}")
    with pytest.raises(PlanError, match="holds no plan files"):
        load_plans(tmp_path)
