"""Run comparison: block-bootstrap intervals on synthetic runs whose truth is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibcbench.errors import RunError
from ibcbench.results.compare import (
    bootstrap_ratio,
    compare_latencies,
    compare_runs,
    time_blocks,
)
from ibcbench.results.runs import new_run


def _frame(query: str, values: np.ndarray, seconds: float = 10.0) -> pd.DataFrame:
    t = np.linspace(0, seconds, len(values), endpoint=False)
    return pd.DataFrame({"query": query, "latency_ms": values, "ok": True, "t_s": t})


def _drifting_run(rng: np.random.Generator, factor: float = 1.0, n: int = 4000) -> np.ndarray:
    """10 s of latencies whose level moves from second to second (cache, checkpoints, neighbours):
    what one run of a server looks like, unlike independent draws."""
    level = np.repeat(rng.normal(0, 0.15, 10), n // 10)
    return factor * np.exp(level + rng.normal(0, 0.3, n))


def test_a_a_intervals_hold_1_when_latencies_drift_within_a_run() -> None:
    # the same configuration twice: the truth is 1; resampling single latencies as if independent
    # gives intervals so narrow that most A/A pairs would be called different
    rng = np.random.default_rng(11)
    held = 0
    for _ in range(30):
        a, b = _frame("q", _drifting_run(rng)), _frame("q", _drifting_run(rng))
        row = compare_latencies(a, b, n_boot=400).iloc[0]
        held += row.ci_low <= 1 <= row.ci_high
    assert held >= 25  # 95% intervals: about 28 of 30


def test_the_point_ratio_uses_every_latency() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 0.5, 20_000), rng.lognormal(0.1, 0.5, 20_000)
    ratio, low, high = bootstrap_ratio(a, b, n_boot=200, seed=1)
    assert ratio == pytest.approx(np.median(b) / np.median(a), rel=1e-12)
    assert low < ratio < high


def test_independent_samples_recover_a_known_ratio() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 0.3, 4000), rng.lognormal(np.log(1.5), 0.3, 4000)
    ratio, low, high = bootstrap_ratio(a, b, seed=1)  # each value its own block
    assert low < 1.5 < high and high - low < 0.1 and ratio == pytest.approx(1.5, abs=0.05)


@pytest.mark.parametrize(
    ("factor", "verdict"), [(2.0, "slower"), (0.5, "faster"), (1.0, "no difference")]
)
def test_verdicts(factor: float, verdict: str) -> None:
    rng = np.random.default_rng(5)
    frame = compare_latencies(
        _frame("q", _drifting_run(rng)), _frame("q", _drifting_run(rng, factor))
    )
    assert frame.verdict.tolist() == [verdict]
    row = frame.iloc[0]
    assert row.ci_width == pytest.approx(row.ci_high - row.ci_low, abs=0.002)
    assert row.baseline_blocks == row.candidate_blocks == 10


@pytest.mark.parametrize(
    ("seconds", "n", "blocks"), [(30.0, 3000, 30), (2.0, 1000, 10), (10.0, 500, 10)]
)
def test_time_blocks_are_a_second_or_a_tenth_of_a_short_run(
    seconds: float, n: int, blocks: int
) -> None:
    got = time_blocks(_frame("q", np.ones(n), seconds))
    assert len(np.unique(got)) == blocks and (np.diff(got) >= 0).all()


def test_runs_are_compared_from_their_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    base, cand = new_run("a", root=tmp_path), new_run("b", root=tmp_path)
    for run, factor in ((base, 1.0), (cand, 1.6)):
        run.update_manifest(
            scale="small", workload={"engine": "pgbench", "clients": 4, "rate_qps": None}
        )
        run.write_frame("workload_latencies", _frame("q", _drifting_run(rng, factor)))
    result = compare_runs(base, cand)
    assert result.regressions["query"].tolist() == ["q"]
    other = new_run("c", root=tmp_path)
    other.write_frame("workload_latencies", _frame("z", rng.lognormal(0, 0.2, 50)))
    with pytest.raises(RunError, match="share no query"):
        compare_runs(base, other)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("engine", "python", "differ in engine \\('pgbench' vs 'python'\\)"),
        ("clients", 8, "differ in clients"),
        ("rate_qps", 500.0, "differ in rate_qps"),
        ("scale", "default", "differ in scale \\('small' vs 'default'\\)"),
    ],
)
def test_runs_of_different_setups_are_refused(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    rng = np.random.default_rng(9)
    runs = []
    for label in ("a", "b"):
        run = new_run(label, root=tmp_path)
        workload = {"engine": "pgbench", "clients": 4, "rate_qps": None}
        manifest = {"scale": "small", "workload": workload}
        if label == "b":
            (workload if key != "scale" else manifest)[key] = value
        run.update_manifest(**manifest)
        run.write_frame("workload_latencies", _frame("q", rng.lognormal(0, 0.2, 200)))
        runs.append(run)
    with pytest.raises(RunError, match=message):
        compare_runs(runs[0], runs[1])


def test_repetitions_are_the_resampling_unit(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    sides = []
    for side in ("a", "b"):
        runs = []
        for i in range(5):
            run = new_run(f"{side}{i}", root=tmp_path)
            run.write_frame("workload_latencies", _frame("q", _drifting_run(rng)))
            runs.append(run)
        sides.append(runs)
    result = compare_runs(sides[0], sides[1])
    row = result.frame.iloc[0]
    assert row.baseline_blocks == row.candidate_blocks == 5 and row.baseline_n == 20_000
    assert row.verdict == "no difference" and "+" in result.baseline


def test_cli_prints_widths_refuses_mixed_setups_and_says_what_one_run_covers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibcbench.cli import main

    rng = np.random.default_rng(17)
    runs = {}
    for label, engine in (("a", "pgbench"), ("b", "pgbench"), ("c", "python")):
        run = new_run(label, root=tmp_path)
        run.update_manifest(
            scale="small", workload={"engine": engine, "clients": 4, "rate_qps": None}
        )
        run.write_frame("workload_latencies", _frame("q", _drifting_run(rng)))
        runs[label] = str(run.path)
    assert main(["compare", runs["a"], runs["b"]]) == 0
    out = capsys.readouterr().out
    assert "ci_width" in out and "1 of 1 intervals hold 1" in out and "--repeat 5" in out
    assert main(["compare", runs["a"], runs["c"]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differ in engine ('pgbench' vs 'python')" in err[0]
