"""Notebook 01 at tiny scale: under papermill (recorded values) — nbmake runs it too (scripts/test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibcbench.metrics import all_metrics
from ibcbench.results.runs import new_run
from ibcbench.suite.notebook import notebooks_dir, run_notebook

pytestmark = [pytest.mark.db, pytest.mark.notebook]


def test_01_generates_loads_and_profiles(server_dsn: str, tmp_path: Path) -> None:
    run = new_run("nb01", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "01_generate_and_load.ipynb", run, {"dsn": server_dsn, "scale": "tiny"}
    )
    assert result.ok, result.error
    rec = result.recorded
    assert sorted(set(rec) - set(all_metrics())) == []  # every recorded key has a metric
    assert rec["dataset"] == "ibcbench_tiny_s42"
    assert rec["rows_packet_flow"] == 20_000
    assert rec["chains"] >= 20
    assert 0 < rec["stuck_pct"] + rec["timeout_pct"] < 1
    assert rec["clear_time_p99_s"] > rec["clear_time_p50_s"] > 10
    assert rec["created"] in (True, False) and rec["dataset_seconds"] >= 0
    # a dataset built by this run records its load rate, a reused one records none
    assert (rec["load_rows_per_s"] is None) is (not rec["created"])
    assert rec["load_rows_per_s"] is None or rec["load_rows_per_s"] > 1000
    assert (run.path / "figures" / "01_dataset_profile.png").exists()
