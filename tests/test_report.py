"""The report, built from a real tiny run; a baseline with a seeded regression is flagged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ibcbench.results.recorded import RECORD_MIME
from ibcbench.results.runs import Run, new_run
from ibcbench.suite.notebook import notebooks_dir, run_all
from ibcbench.suite.report import build_report

pytestmark = [pytest.mark.db, pytest.mark.notebook]


@pytest.fixture(scope="module")
def tiny_run(server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = new_run("report", root=tmp_path_factory.mktemp("runs"))
    result = run_all(run, scale="tiny", seed=42, dsn=server_dsn, echo=False,
                     notebooks=[notebooks_dir() / "01_generate_and_load.ipynb"])  # fmt: skip
    assert result.ok and result.report == run.path / "report.html"
    return run


def test_report_has_every_section(tiny_run: Run) -> None:
    page = (tiny_run.path / "report.html").read_text()
    for needle in ('id="summary"', 'id="manifest"', 'id="nb01"', "Key numbers", "rows_packet_flow",
                   "data:image/png;base64,", 'href="01_generate_and_load.ipynb"', "non-default server settings",
                   "TimescaleDB"):  # fmt: skip
        assert needle in page, needle
    assert (tiny_run.path / "01_generate_and_load.ipynb").exists()
    assert "http://" not in page and "https://" not in page  # self-contained


def test_baseline_regression_is_flagged(tiny_run: Run, tmp_path: Path) -> None:
    baseline = Run(tmp_path / "baseline")
    shutil.copytree(tiny_run.path, baseline.path)
    nb_path = baseline.path / "01_generate_and_load.ipynb"
    nb = json.loads(nb_path.read_text())
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if RECORD_MIME in data:
                # the baseline cleared packets 10x faster: this run is a regression on that number
                data[RECORD_MIME]["clear_time_p50_s"] = data[RECORD_MIME]["clear_time_p50_s"] / 10
    nb_path.write_text(json.dumps(nb))
    page = build_report(tiny_run, baseline=baseline).read_text()
    assert 'id="baseline"' in page and "1 regression(s)" in page
    assert '<tr class="regression">' in page and "clear_time_p50_s" in page
