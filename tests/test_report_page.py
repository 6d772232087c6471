"""The report page as a reader sees it: one value per key wherever it is stated (cards, findings,
figure titles), which run 'latest' is, the self-baseline refusal, and a real browser's width."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from ibcbench.bench.maintenance import plot_health
from ibcbench.bench.poolsweep import PoolSweepResult, plot_sweep
from ibcbench.cli import main
from ibcbench.metrics import all_metrics
from ibcbench.results.recorded import save_figure
from ibcbench.results.runs import Run, find_run, new_run
from ibcbench.suite.report import build_report
from tests.test_report import write_run

BROWSER_WIDTH = 1300


def _sweep() -> PoolSweepResult:
    """A sweep whose knee is 4 at 8 clients and 16 at 32: only the most clients' is the knee."""
    rows = []
    for clients, best in ((8, 4), (32, 16)):
        for size in (1, 4, 16, 25):
            for prepared in (True, False):
                rows.append(
                    {
                        "prepared": prepared,
                        "health_check": False,
                        "clients": clients,
                        "max_size": size,
                        "throughput_qps": 1000.0 if size >= best else 100.0 * size,
                        "p95_ms": 2.0,
                        "wait_ms_per_request": 0.1,
                        "errors": 0,
                        "client_bound": False,
                    }
                )
    return PoolSweepResult(pd.DataFrame(rows))


def _health() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "chain_id": ["injective-1", "axelar-dojo-1", "osmosis-1"],
            "health_score": [52.05, 80.0, 97.5],
            "grade": ["critical", "degraded", "healthy"],
        }
    )
    frame.attrs["window_days"] = 14
    return frame


def fixture_run(root: Path, label: str = "all-tiny") -> Run:
    sweep = _sweep()
    pool = {k: v for k, v in sweep.key_numbers().items() if v is not None}
    pool |= {"capacity_knee_pgbench": 4, "capacity_knee_python": 4}
    health = {
        "health_window_days": 14,
        "health_worst_chain": "injective-1",
        "health_worst": 52.05,
        "health_best_chain": "osmosis-1",
        "health_best": 97.5,
        "monitor_health_score_hits": 2,
        "monitor_health_score_misses": 0,
        "monitor_health_score_false_alarms": 0,
    }
    run = write_run(root, label, {"03": pool, "06": health})
    save_figure(plot_sweep(sweep), "03_pool_sweep", run, close=True)
    save_figure(plot_health(_health()), "06_network_health", run, close=True)
    run.write_frame("pool_sweep", sweep.frame)
    run.write_frame(
        "maint_incident_alerts",
        pd.DataFrame(
            {"monitor": ["health_score"] * 2, "chain_id": ["injective-1", "axelar-dojo-1"]}
        ),
    )
    run.update_manifest(
        status="complete", timescaledb_version="2.28.3", timescaledb_edition="timescale"
    )
    return run


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def stated(page: str) -> dict[str, list[str]]:
    """Every place the page states a value: cards (label -> value), findings, figure captions."""
    cards = {
        _text(label).strip(): _text(value).strip()
        for label, value in re.findall(
            r'<div class="label">(.*?)</div><div class="value">(.*?)</div>', page, flags=re.S
        )
    }
    findings = [_text(d) for d in re.findall(r"<dd>(.*?)</dd>", page, flags=re.S)]
    captions = [_text(c) for c in re.findall(r"<figcaption>(.*?)</figcaption>", page, flags=re.S)]
    return {
        "cards": [f"{k}: {v}" for k, v in cards.items()],
        "findings": findings,
        "captions": captions,
    }


def _values(texts: list[str], pattern: str) -> set[str]:
    return {m.group(0) for t in texts for m in re.finditer(pattern, t)}


def test_each_key_has_one_value_on_the_page(tmp_path: Path) -> None:
    run = fixture_run(tmp_path)
    page = build_report(run, metrics=all_metrics()).read_text()
    places = stated(page)
    knee = r"max_size \d+ at \d+ clients"
    window = r"whole data span, \d+ days"
    for pattern in (knee, window):
        found = {where: _values(texts, pattern) for where, texts in places.items()}
        assert all(found.values()), (pattern, found)  # stated in the card, the text, the figure
        assert len(set().union(*found.values())) == 1, (pattern, found)
    assert _values(places["cards"], knee) == {"max_size 16 at 32 clients"}
    worst = r"injective-1 \W+52\.05"
    assert _values(places["cards"], worst) and _values(
        places["findings"], r"injective-1 \(52\.05\)"
    )
    assert "timescaledb: 2.28.3 (Community)" in places["cards"]
    assert re.search(r"<details><summary>result table pool_sweep", page)
    assert "knee max size (connections)" in page  # key numbers with their unit


def test_report_latest_is_the_newest_complete_notebook_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(tmp_path))
    notebooks = fixture_run(tmp_path)
    failed = write_run(tmp_path, "all-failed", {"03": {"knee_max_size": 4}})
    failed.update_manifest(status="failed")
    faults = new_run("faults-tiny", root=tmp_path)
    faults.write_frame("faults", pd.DataFrame({"fault": ["kill"], "verdict": ["survived"]}))
    faults.update_manifest(status="complete", faults={"elapsed_s": 1.0}, key_numbers={})
    assert find_run("latest", tmp_path, notebooks=True) == notebooks
    assert main(["report", "latest"]) == 0
    assert str(notebooks.path) in capsys.readouterr().out
    # a fault-suite run named gets a report of its own that shows its table
    assert main(["report", str(faults.path)]) == 0
    page = (faults.path / "report.html").read_text()
    assert "result table faults" in page and "0 / 0 ok" not in page


def test_a_run_is_refused_as_its_own_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = fixture_run(tmp_path)
    assert main(["report", str(run.path), "--baseline", str(run.path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is the run itself" in err[0], err
    assert not (run.path / "report.html").exists()


def test_a_comparison_without_workload_latencies_does_not_mention_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, run = fixture_run(tmp_path, "a"), fixture_run(tmp_path, "b")
    assert main(["report", str(run.path), "--baseline", str(base.path)]) == 0
    assert "workload latency" not in capsys.readouterr().out
    assert "Workload latency" not in (run.path / "report.html").read_text()


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


SCROLL_WIDTH_SCRIPT = (
    "<script>window.addEventListener('load',function(){"
    "document.querySelectorAll('details').forEach(function(d){d.open=true;});"
    "var p=document.createElement('pre');"
    "p.id='scroll-width';p.textContent='scrollWidth='+document.documentElement.scrollWidth;"
    "document.body.appendChild(p);});</script>"
)


def browser_scroll_width(page: Path, profile: Path, *, screenshot: Path | None = None) -> int:
    """Render ``page`` in headless Chromium at 1300x900 and return the document's scrollWidth with
    every folded table opened (a reader opens them)."""
    probe = page.with_name(".scroll-probe.html")
    probe.write_text(page.read_text().replace("</body>", SCROLL_WIDTH_SCRIPT + "</body>"))
    base = [
        chromium() or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={BROWSER_WIDTH},900",
    ]
    try:
        out = subprocess.run(
            [*base, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        if screenshot is not None:
            subprocess.run(
                [*base, f"--screenshot={screenshot}", page.as_uri()],
                capture_output=True,
                timeout=120,
            )
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r"scrollWidth=(\d+)", out)
    assert found, out[-2000:]
    return int(found.group(1))


@pytest.mark.skipif(
    chromium() is None, reason="chromium is not installed (apt-get install chromium)"
)
def test_the_page_does_not_scroll_sideways_in_a_1300px_window(tmp_path: Path) -> None:
    run = fixture_run(tmp_path / "runs")
    # a long table under notebook 03: many rows, long cells without spaces
    run.write_frame(
        "pool_points",
        pd.DataFrame(
            {
                "fault": [f"fault_{i}_" + "x" * 60 for i in range(300)],
                "detail": ["a long detail without spaces " + "y" * 200] * 300,
                "verdict": ["survived"] * 300,
            }
        ),
    )
    page = build_report(run, metrics=all_metrics())
    shot = Path(os.environ.get("IBCBENCH_REPORT_SCREENSHOT") or tmp_path / "report.png")
    width = browser_scroll_width(page, tmp_path / "profile", screenshot=shot)
    assert width <= BROWSER_WIDTH, f"the page is {width} px wide in a {BROWSER_WIDTH} px window"


@pytest.mark.parametrize(
    ("manifest", "card"),
    [
        (
            {"timescaledb_version": "2.28.3", "timescaledb_edition": "timescale"},
            "2.28.3 (Community)",
        ),
        (
            {"timescaledb": "TimescaleDB 2.17.2 Apache edition", "timescaledb_edition": "apache"},
            "2.17.2 (Apache)",
        ),
        (
            {
                "timescaledb_edition": "timescale",
                "timescaledb_build": {"version": "2.28.3", "patched": ["job error (#1)"]},
            },
            "2.28.3 (Community) · patched: job error (#1)",
        ),
        ({}, "none"),
    ],
)
def test_the_timescaledb_card_shows_the_version(manifest: dict, card: str) -> None:
    from ibcbench.suite.report import timescaledb_card

    assert timescaledb_card(manifest) == card
