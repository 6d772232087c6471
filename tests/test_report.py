"""The report from a real tiny run, and the baseline comparison and its CI gate.

Run folders for the comparisons are written the way the kit writes them: executed notebooks whose
outputs carry what :func:`~ibcbench.results.recorded.record` recorded (its MIME bundle), a manifest
with each notebook's status, and result tables through ``Run.write_frame``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pandas as pd
import pytest

from ibcbench.cli import main
from ibcbench.errors import ConfigError
from ibcbench.metrics import all_metrics
from ibcbench.results.metrics import Metric, compare_recorded
from ibcbench.results.recorded import RECORD_MIME, read_recorded, record
from ibcbench.results.runs import Run, new_run
from ibcbench.suite.notebook import notebooks_dir, run_all
from ibcbench.suite.report import build_report, compare_with_baseline

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_NAMES = {
    "01": "01_generate_and_load",
    "02": "02_index_strategies",
    "03": "03_pool_settings",
    "04": "04_query_plans",
    "05": "05_timescale",
    "06": "06_maintenance",
}


def write_run(
    root: Path,
    label: str,
    recorded: Mapping[str, Mapping[str, Any]],
    *,
    failed: Mapping[str, str] | None = None,
) -> Run:
    """A run folder holding one executed-notebook file per prefix with ``recorded`` in its outputs."""
    run = new_run(label, root=root)
    entries = []
    for prefix, values in recorded.items():
        name = f"{NOTEBOOK_NAMES[prefix]}.ipynb"
        clean = record(**values)  # the values exactly as a notebook's record() cell stores them
        output = nbformat.v4.new_output(
            "display_data", data={RECORD_MIME: clean, "text/plain": repr(clean)}
        )
        nb = nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_markdown_cell(f"# {prefix}\n\nA notebook of the test."),
                nbformat.v4.new_code_cell("record(...)", outputs=[output]),
            ]
        )
        nbformat.write(nb, run.path / name)
        error = (failed or {}).get(prefix)
        entries.append({"notebook": name, "ok": error is None, "error": error, "elapsed_s": 1.0})
    run.update_manifest(notebooks=entries, scale="tiny", seed=42)
    return run


def flagged(page: str, cls: str) -> set[str]:
    """The value names in the report's table rows of class ``cls`` (regression, improvement)."""
    rows = re.findall(rf'<tr class="{cls}">(.*?)</tr>', page, flags=re.S)
    names = set()
    for row in rows:
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
        names.update(cells[:2])  # notebook, value name
    return names


# ---- the report of a real tiny run -----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = new_run("report", root=tmp_path_factory.mktemp("runs"))
    notebooks = [notebooks_dir() / f"{NOTEBOOK_NAMES[p]}.ipynb" for p in ("01", "02")]
    result = run_all(
        run,
        scale="tiny",
        seed=42,
        dsn=server_dsn,
        echo=False,
        notebooks=notebooks,
        metrics=all_metrics(),
    )
    assert result.ok and result.report == run.path / "report.html"
    return run


@pytest.mark.db
@pytest.mark.notebook
def test_report_has_every_section(tiny_run: Run) -> None:
    page = (tiny_run.path / "report.html").read_text()
    for needle in (
        'id="summary"',
        'id="manifest"',
        'id="nb01"',
        "Key numbers",
        "rows packet flow (rows)",  # the key as the findings label it, with its unit
        "data:image/png;base64,",
        'href="01_generate_and_load.ipynb"',
        "non-default server settings",
        "TimescaleDB",
        "packets loaded",
        '<span class="status ok">ok</span>',
    ):
        assert needle in page, needle
    assert (tiny_run.path / "01_generate_and_load.ipynb").exists()
    assert "http://" not in page and "https://" not in page  # self-contained


@pytest.mark.db
@pytest.mark.notebook
def test_every_key_the_run_recorded_has_a_direction(tiny_run: Run) -> None:
    recorded = read_recorded(tiny_run.path / "01_generate_and_load.ipynb")
    assert "rows_packet_flow" in recorded  # profile.summary()'s keys, which no notebook spells out
    assert sorted(set(recorded) - set(all_metrics())) == []


@pytest.mark.db
@pytest.mark.notebook
def test_real_run_against_itself_passes_and_a_planted_regression_fails(
    tiny_run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twin = Run(tmp_path / "twin")
    shutil.copytree(tiny_run.path, twin.path)
    argv = ["report", str(twin.path), "--baseline", str(tiny_run.path), "--fail-on", "regression"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "regression:" not in out and re.search(
        r"\d+ compared \(0 regression\(s\), 0 improvement\(s\)", out
    )
    assert re.search(r"^compared \(\d+\): .*02 wallet_history_p50_ms_service", out, re.M)

    # the same run with the service strategy's wallet history 3x slower: one regression, one line
    nb_path = twin.path / "02_index_strategies.ipynb"
    nb = json.loads(nb_path.read_text())
    for cell in nb["cells"]:
        for out_ in cell.get("outputs", []):
            if RECORD_MIME in out_.get("data", {}):
                out_["data"][RECORD_MIME]["wallet_history_p50_ms_service"] *= 3
    nb_path.write_text(json.dumps(nb))
    assert main(argv) == 1
    lines = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("regression:")
    ]
    assert len(lines) == 1 and re.fullmatch(
        r"regression: 02 wallet_history_p50_ms_service [\d.]+ -> [\d.]+ ms \(x3, noise x2\.5 and 0\.05 ms\)",
        lines[0],
    ), lines
    page = (twin.path / "report.html").read_text()
    assert flagged(page, "regression") == {"02", "wallet_history_p50_ms_service"}
    assert "1 regression(s)" in page


# ---- directions from the table, not from the key names -----------------------------------------

BASE = {
    "01": {"acknowledged_pct": 80.0, "clear_time_p50_s": 48.0, "load_rows_per_s": 15000.0},
    "02": {
        "wallet_history_p50_ms_service": 0.33,
        "wallet_history_speedup": 30.0,
        "winners": {"q": "service"},
    },
    "03": {"knee_max_size": 4, "errors": 0, "client_bound_points": 1, "best_qps": 900.0},
    "04": {"worst_q_error": 10.0, "slower": 0},
    "05": {
        "point_lookup_ratio_many_chunks_vs_plain": 1.2,
        "rollup_matches_raw": True,
        "refresh_ms": {"materialized_view": 10.0, "continuous_aggregate": 5.0},
    },
    "06": {"cron_jobs_seen": 4, "lookup_p50_ms_after": 0.17},
}


@pytest.mark.parametrize(
    ("prefix", "key", "value", "verdict"),
    [
        # a latency ratio: lower is better ("ratio_" made it higher-is-better)
        ("05", "point_lookup_ratio_many_chunks_vs_plain", 3.6, "regression"),
        ("05", "point_lookup_ratio_many_chunks_vs_plain", 0.4, "improvement"),
        # counts and sizes, not times ("_s" of "_seen", "_size"; "pct")
        ("06", "cron_jobs_seen", 5, "improvement"),
        ("06", "cron_jobs_seen", 2, "regression"),
        ("03", "knee_max_size", 25, None),
        ("01", "acknowledged_pct", 99.0, None),
        ("01", "clear_time_p50_s", 480.0, None),  # the generated data's clear times, not a speed
        # never flagged before; errors from a zero baseline
        ("03", "errors", 4, "regression"),
        ("03", "client_bound_points", 4, "regression"),
        ("03", "client_bound_points", 2, None),  # one point flips with noise
        ("04", "worst_q_error", 100.0, "regression"),
        ("04", "slower", 3, "regression"),
        # dicts entry by entry, booleans
        (
            "05",
            "refresh_ms",
            {"materialized_view": 100.0, "continuous_aggregate": 5.0},
            "regression",
        ),
        ("05", "rollup_matches_raw", False, "regression"),
        # latencies: beyond noise, within noise
        ("02", "wallet_history_p50_ms_service", 0.99, "regression"),
        ("02", "wallet_history_p50_ms_service", 0.36, None),
        ("02", "wallet_history_speedup", 1.2, "regression"),  # a dropped index
        ("02", "wallet_history_speedup", 10.0, None),  # x0.33: identical runs moved it x5
        ("03", "best_qps", 2700.0, "improvement"),
        ("06", "lookup_p50_ms_after", 0.2, None),  # few samples: 0.17 -> 0.2 is noise
    ],
)
def test_direction_comes_from_the_table(
    tmp_path: Path, prefix: str, key: str, value: Any, verdict: str | None
) -> None:
    baseline = write_run(tmp_path, "base", BASE)
    candidate = write_run(tmp_path, "cand", {**BASE, prefix: {**BASE[prefix], key: value}})
    diff = compare_with_baseline(candidate, baseline, metrics=all_metrics())
    page = build_report(candidate, diff=diff, metrics=all_metrics()).read_text()
    regressions, improvements = flagged(page, "regression"), flagged(page, "improvement")
    name = f"{key}[materialized_view]" if key == "refresh_ms" else key
    assert (name in regressions) == (verdict == "regression"), sorted(regressions)
    assert (name in improvements) == (verdict == "improvement"), sorted(improvements)
    others = {prefix, name}
    assert regressions <= others and improvements <= others  # nothing else moved


def test_unknown_and_informational_keys_are_listed_with_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {**BASE, "02": {**BASE["02"], "brand_new_p50_ms": 1.0}}
    cand = {**BASE, "02": {**BASE["02"], "brand_new_p50_ms": 9.0, "only_here": 1}}
    baseline, candidate = write_run(tmp_path, "base", base), write_run(tmp_path, "cand", cand)
    assert (
        main(
            [
                "report",
                str(candidate.path),
                "--baseline",
                str(baseline.path),
                "--fail-on",
                "regression",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "not compared, no direction known (1): 02 brand_new_p50_ms" in out
    assert "not compared, only in this run (1): 02 only_here" in out
    assert re.search(
        r"not compared, informational \(\d+\): 01 acknowledged_pct, 01 clear_time_p50_s", out
    )
    assert re.search(
        r"^compared \(\d+\): 01 load_rows_per_s, 02 wallet_history_p50_ms_service", out, re.M
    )
    page = (candidate.path / "report.html").read_text()
    assert "brand_new_p50_ms" not in flagged(page, "regression")
    not_compared = page.split("Not compared (", 1)[1]
    for why in (
        "no direction known",
        "only in this run",
        "informational: a property of the generated data",
    ):
        assert why in not_compared, why


# ---- the CI gate -------------------------------------------------------------------------------


def test_gate_fails_on_planted_regressions_and_prints_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = write_run(tmp_path, "base", BASE)
    worse = {
        **BASE,
        "02": {**BASE["02"], "wallet_history_p50_ms_service": 0.99},
        "03": {**BASE["03"], "errors": 4},
    }
    candidate = write_run(tmp_path, "cand", worse)
    argv = ["report", str(candidate.path), "--baseline", str(baseline.path)]
    assert main(argv) == 0  # without --fail-on the report says so and exits 0
    assert main([*argv, "--fail-on", "regression"]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("regression:")]
    assert lines[-2:] == [
        "regression: 02 wallet_history_p50_ms_service 0.33 -> 0.99 ms (x3, noise x2.5 and 0.05 ms)",
        "regression: 03 errors 0 -> 4 errors (+4, noise 0)",
    ]
    assert "2 regression(s)" in (candidate.path / "report.html").read_text()


@pytest.mark.parametrize("factor", [1.0, 1.1, 0.92])
def test_gate_passes_an_a_a_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], factor: float
) -> None:
    """The same values, or every number moved within its noise (here 10% at most)."""

    def scaled(values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: v * factor if isinstance(v, float) else v  # counts and names stay
            for k, v in values.items()
        }

    baseline = write_run(tmp_path, "base", BASE)
    candidate = write_run(tmp_path, "cand", {p: scaled(v) for p, v in BASE.items()})
    argv = ["report", str(candidate.path), "--baseline", str(baseline.path)]
    assert main([*argv, "--fail-on", "regression"]) == 0
    out = capsys.readouterr().out
    assert "regression:" not in out and "(0 regression(s)" in out


def test_gate_needs_a_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, "one", BASE)
    assert main(["report", str(run.path), "--fail-on", "regression"]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "ibcbench: error: --fail-on regression needs a run to compare with: add --baseline RUN"
    )
    assert not (run.path / "report.html").exists()  # refused before any work


def test_a_notebook_failing_in_this_run_fails_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = write_run(tmp_path, "base", BASE)
    candidate = write_run(
        tmp_path, "cand", BASE, failed={"03": "ZeroDivisionError: division by zero"}
    )
    assert (
        main(
            [
                "report",
                str(candidate.path),
                "--baseline",
                str(baseline.path),
                "--fail-on",
                "regression",
            ]
        )
        == 1
    )
    assert (
        "failed: 03_pool_settings.ipynb: ZeroDivisionError: division by zero"
        in capsys.readouterr().out
    )


# ---- the workload latency section: always there, its failures shown -------------------------------


def _latencies(scale: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(np.log(0.3 * scale), 0.2, 800)
    return pd.DataFrame({"query": "wallet_history", "latency_ms": values, "ok": True})


@pytest.mark.parametrize(
    ("case", "rc", "needle"),
    [
        ("none", 0, None),  # neither run has any: nothing is said about them
        # one run has some: why they were not compared
        ("one", 0, "no result &#39;workload_latencies&#39;"),
        ("slower", 1, "regression: workload wallet_history p50"),
        ("same", 0, "1 queries compared, 0 slower"),
        # a latency file that cannot be read: shown, and the gate fails (it could not look)
        ("unreadable", 1, "latency comparison failed: ArrowInvalid"),
    ],
)
def test_latency_section_is_there_where_a_run_has_latencies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, rc: int, needle: str | None
) -> None:
    baseline, candidate = write_run(tmp_path, "base", BASE), write_run(tmp_path, "cand", BASE)
    if case == "one":
        baseline.write_frame("workload_latencies", _latencies(1, 1))
    elif case != "none":
        baseline.write_frame("workload_latencies", _latencies(1, 1))
        candidate.write_frame("workload_latencies", _latencies(3 if case == "slower" else 1, 2))
    if case == "unreadable":
        (candidate.path / "results" / "workload_latencies.parquet").write_bytes(b"not parquet")
    argv = ["report", str(candidate.path), "--baseline", str(baseline.path)]
    assert main([*argv, "--fail-on", "regression"]) == rc
    page = (candidate.path / "report.html").read_text()
    out = capsys.readouterr().out
    if needle is None:
        assert "Workload latency" not in page and "workload latency" not in out
        return
    assert "Workload latency" in page
    assert needle in page or needle in out, (needle, out)


# ---- the table itself, the templates ----------------------------------------------------------


def test_metric_rules_are_checked_when_built() -> None:
    with pytest.raises(ConfigError, match="metric 'x': better must be 'higher', 'lower' or 'none'"):
        Metric("x", "up")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="metric 'x': noise thresholds must be >= 0"):
        Metric("x", "lower", noise_rel=-0.1)


def test_zero_baseline_is_compared_by_absolute_change() -> None:
    diffs = compare_recorded(
        {"03": {"errors": 0, "max_wait_ms_per_request": 0.0}},
        {"03": {"errors": 0, "max_wait_ms_per_request": 0.04}},
        metrics=all_metrics(),
    )
    assert [(d.key, d.verdict) for d in diffs] == [
        ("errors", "same"),
        ("max_wait_ms_per_request", "same"),
    ]
    diffs = compare_recorded(
        {"03": {"max_wait_ms_per_request": 0.0}},
        {"03": {"max_wait_ms_per_request": 2.0}},
        metrics=all_metrics(),
    )
    assert [(d.verdict, d.detail) for d in diffs] == [("regression", "+2")]


def test_values_are_escaped(tmp_path: Path) -> None:
    run = write_run(tmp_path, "esc", {"04": {"biggest_change_query": "<script>alert(1)</script>"}})
    page = build_report(run, metrics=all_metrics()).read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_numbers_keep_their_digits_in_reports() -> None:
    from ibcbench.suite.pagetables import fmt as _fmt

    assert _fmt(0.000231) == "0.000231"  # a 4000x speed-up as a ratio
    assert _fmt(1.23456) == "1.235"
    assert _fmt(12345.5) == "12,345.5"
    assert _fmt(float("nan")) == "–"
    assert _fmt(0.0) == "0"


def test_templates_are_package_data() -> None:
    """A non-editable install holds the templates: pyproject's package-data covers every file."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["ibcbench"]
    assert "jinja2>=3.1" in config["project"]["dependencies"]
    templates = sorted((ROOT / "ibcbench" / "suite" / "templates").iterdir())
    assert templates
    for path in templates:
        relative = path.relative_to(ROOT / "ibcbench")
        assert any(relative.match(p) for p in patterns), relative


def _fault_run(root: Path, stamp: str, survived: int, *, status: str = "complete") -> Run:
    """A run folder as `ibcbench bench faults` writes it: key numbers and results/faults."""
    run = Run(root / f"{stamp}-faults-tiny")
    run.path.mkdir(parents=True)
    created = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:00+00:00"
    run.update_manifest(
        run_id=run.id,
        created_at=created,
        status=status,
        scale="tiny",
        faults={"elapsed_s": 1.0, "server_version": 150010},
        key_numbers={"faults_injected": 2, "faults_survived": survived, "faults_rows_lost": 0},
    )
    frame = pd.DataFrame(
        [
            {"group": "load", "fault": f"sigint-{stamp}", "verdict": "survived"},
            {
                "group": "disk",
                "fault": "full",
                "verdict": "survived" if survived == 2 else "FAILED",
            },
        ]
    )
    run.write_frame("faults", frame)
    return run


def test_the_report_shows_the_latest_fault_run_when_the_run_has_none(tmp_path: Path) -> None:
    _fault_run(tmp_path, "20260101-090000", 1)
    latest = _fault_run(tmp_path, "20260102-100000", 2)
    _fault_run(tmp_path, "20260103-110000", 0, status="running")  # under way: not a result
    run = write_run(tmp_path, "all-tiny", {"01": {"rows_packet_flow": 10}})
    page = build_report(run, metrics=all_metrics()).read_text()
    assert 'id="faults"' in page and 'href="#faults"' in page
    assert f"latest run {latest.id}, 2026-01-02 10:00 UTC" in page
    assert "faults survived · 2026-01-02 10:00 UTC" in page
    assert "sigint-20260102-100000" in page and "PostgreSQL 15.10" in page
    assert "sigint-20260101-090000" not in page and "sigint-20260103-110000" not in page
    # no fault run in the runs folder: no such section
    lone = write_run(tmp_path / "other", "all-tiny", {"01": {"rows_packet_flow": 10}})
    assert 'id="faults"' not in build_report(lone, metrics=all_metrics()).read_text()
