"""Progress while notebooks run (ibcbench.suite.progress): plain lines off a terminal, one live line
on one (a pseudo-terminal here), the estimate from the last run, and the summary table."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from ibcbench.results.runs import new_run
from ibcbench.suite.notebook import notebook_entry, run_notebook
from ibcbench.suite.progress import Estimate, NotebookProgress, clock_text, last_estimate


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_one_per_start_and_end_no_carriage_returns() -> None:
    out, err, clock = io.StringIO(), io.StringIO(), FakeClock()
    progress = NotebookProgress(out=out, err=err, live=False, clock=clock)
    progress.start("01_generate_and_load.ipynb", 5, Estimate(12.0, "20260101-000000-all-tiny"))
    for i in range(1, 6):
        clock.now += 2
        progress.cell(i)
    progress.finish(10.25, True)
    progress.start("02_index_strategies.ipynb", 3, None)
    progress.cell(1)
    progress.finish(4.0, False, "ValueError: boom")
    progress.refused("04_query_plans.ipynb", "dataset in use")
    assert out.getvalue().splitlines() == [
        "running 01_generate_and_load.ipynb (5 cells; last run 12.0 s (20260101-000000-all-tiny)) ...",
        "  01_generate_and_load.ipynb: ok in 10.2 s (last run 12.0 s)",
        "running 02_index_strategies.ipynb (3 cells; no earlier run to go by) ...",
        "  02_index_strategies.ipynb: FAILED (ValueError: boom) in 4.0 s",
        "  04_query_plans.ipynb: FAILED (dataset in use) in 0.0 s",
    ]
    assert "\r" not in out.getvalue() and err.getvalue() == ""
    assert progress.summary().splitlines() == [
        "notebook                    time    status  estimate",
        "01_generate_and_load.ipynb  10.2 s  ok      12.0 s (20260101-000000-all-tiny)",
        "02_index_strategies.ipynb   4.0 s   FAILED  –",
        "04_query_plans.ipynb        0.0 s   FAILED  –",
    ]


def test_the_live_line_says_the_cell_the_time_and_what_is_left() -> None:
    clock = FakeClock()
    progress = NotebookProgress(out=io.StringIO(), err=io.StringIO(), live=False, clock=clock)
    progress.start("04_query_plans.ipynb", 12, Estimate(70.0, "r1"))
    clock.now += 42
    progress.cell(5)
    assert progress.line() == (
        "04_query_plans.ipynb · cell 5/12 · 0:42 elapsed · last run 1:10, ~0:28 left"
    )
    clock.now += 40
    assert progress.line().endswith("last run 1:10, 0:12 over")
    assert clock_text(3725) == "1:02:05"


_TTY_SCRIPT = textwrap.dedent(
    """
    import time
    from ibcbench.suite.progress import Estimate, NotebookProgress

    progress = NotebookProgress(refresh_s=0.05)  # stdout and stderr: the pseudo-terminal
    assert progress.live
    progress.start("04_query_plans.ipynb", 3, Estimate(1.0, "20260101-000000-all-tiny"))
    for i in (1, 2, 3):
        progress.cell(i)
        time.sleep(0.3)
    progress.finish(0.9, True)
    print(progress.summary())
    """
)


def _read_all(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    return b"".join(chunks)


def test_on_a_terminal_one_line_is_redrawn_and_the_summary_follows() -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", _TTY_SCRIPT],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(slave)
    try:
        text = _read_all(master, proc).decode()
    finally:
        os.close(master)
    assert proc.returncode == 0, text
    redraws = [part for part in text.split("\r") if part.startswith("04_query_plans.ipynb · cell")]
    for cell in (1, 2, 3):
        assert any(f"cell {cell}/3" in r for r in redraws), text
    assert len(redraws) >= 6, text  # the ticker redraws while a cell runs
    assert "last run 0:01" in text
    assert "\r\x1b[K" in text  # erased before the end line
    assert "04_query_plans.ipynb: ok in 0.9 s (last run 1.0 s)" in text
    assert "notebook              time   status  estimate" in text
    assert "04_query_plans.ipynb  0.9 s  ok      1.0 s (20260101-000000-all-tiny)" in text


def _manifest(root: Path, name: str, **entries: object) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "manifest.json").write_text(json.dumps({"run_id": name, **entries}))


def test_the_estimate_is_the_latest_ok_run_on_the_same_server_and_scale(tmp_path: Path) -> None:
    nb = {"notebook": "04_query_plans.ipynb", "ok": True, "elapsed_s": 30.0}
    target = "ibcbench@127.0.0.1:5432/ibcbench"
    _manifest(tmp_path, "20260101-000000-all-tiny", target=target, scale="tiny", notebooks=[nb])
    _manifest(
        tmp_path,
        "20260102-000000-all-tiny",
        target=target,
        scale="tiny",
        notebooks=[{**nb, "elapsed_s": 20.0}],
    )
    # later ones that do not count: failed, another scale, another server, the run under way
    _manifest(
        tmp_path,
        "20260103-000000-all-tiny",
        target=target,
        scale="tiny",
        notebooks=[{**nb, "ok": False}],
    )
    _manifest(tmp_path, "20260104-000000-all-small", target=target, scale="small", notebooks=[nb])
    _manifest(
        tmp_path, "20260105-000000-all-tiny", target="x@other:1/db", scale="tiny", notebooks=[nb]
    )
    _manifest(tmp_path, "20260106-000000-all-tiny", target=target, scale="tiny", notebooks=[nb])
    (tmp_path / "20260107-broken").mkdir()
    (tmp_path / "20260107-broken" / "manifest.json").write_text("{not json")
    found = last_estimate(
        "04_query_plans.ipynb",
        tmp_path,
        target=target,
        scale="tiny",
        exclude="20260106-000000-all-tiny",
    )
    assert found == Estimate(20.0, "20260102-000000-all-tiny")
    # `ibcbench run` without -p scale records none: it ran at the notebook's default
    _manifest(tmp_path, "20260108-000000-04", target=target, scale=None, notebooks=[nb])
    found = last_estimate(
        "04_query_plans.ipynb", tmp_path, target=target, scale="tiny", default_scale="tiny"
    )
    assert found == Estimate(30.0, "20260108-000000-04")
    assert last_estimate("02_x.ipynb", tmp_path, target=target, scale="tiny") is None
    assert last_estimate("02_x.ipynb", tmp_path / "none", target=target, scale="tiny") is None


@pytest.mark.notebook
def test_a_notebook_run_tells_its_cells_estimate_budget_and_interval(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "ibcbench",
        "display_name": "ibcbench",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("run_dir = None\nduration_s = 1.0\nrepetitions = 5")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 99 · probe"),
        params,
        nbformat.v4.new_code_cell("from ibcbench.results.recorded import record"),
        nbformat.v4.new_code_cell(
            "record(p50_ms=10.0, p50_ci_low_ms=9.0, p50_ci_high_ms=12.0, n=repetitions)"
        ),
    ]
    source = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, source)
    runs = tmp_path / "runs"
    before = new_run("before", root=runs)
    before.update_manifest(notebooks=[{"notebook": "99_probe.ipynb", "ok": True, "elapsed_s": 7.5}])
    run = new_run("probe", root=runs)
    out = io.StringIO()
    progress = NotebookProgress(out=out, err=io.StringIO(), live=False)
    seen: list[int] = []
    original = progress.cell
    progress.cell = lambda index: (seen.append(index), original(index))[1]  # type: ignore[method-assign]
    result = run_notebook(source, run, {"repetitions": 7}, progress=progress)
    assert result.ok, result.error
    assert seen == [1, 2, 3, 4]  # parameters, injected parameters, import, record
    lines = out.getvalue().splitlines()
    assert lines[0] == f"running 99_probe.ipynb (4 cells; last run 7.5 s ({before.id})) ..."
    assert lines[1].startswith("  99_probe.ipynb: ok in ") and lines[1].endswith("(last run 7.5 s)")
    entry = notebook_entry(result)
    assert entry["budget"] == {"duration_s": 1.0, "repetitions": 7}
    assert entry["widest_interval"] == {
        "source": "recorded",
        "value": "p50_ms",
        "low": 9.0,
        "high": 12.0,
        "relative_width": 0.3,
    }
