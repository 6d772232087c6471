"""Run comparison: bootstrap CIs on synthetic samples with a known ratio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibcbench.errors import RunError
from ibcbench.results.compare import bootstrap_ratio, compare_latencies, compare_runs
from ibcbench.results.runs import new_run


def _frame(query: str, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"query": query, "latency_ms": values, "ok": True})


def test_bootstrap_recovers_a_known_ratio() -> None:
    rng = np.random.default_rng(3)
    a = rng.lognormal(0, 0.3, 4000)
    ratio, low, high = bootstrap_ratio(a, a * 1.5, seed=1)
    assert ratio == pytest.approx(1.5)
    assert low < 1.5 < high and high - low < 0.15


@pytest.mark.parametrize(("factor", "verdict"), [(2.0, "slower"), (0.5, "faster"), (1.0, "same")])
def test_verdicts(factor: float, verdict: str) -> None:
    rng = np.random.default_rng(5)
    a = rng.lognormal(0, 0.3, 2000)
    b = rng.lognormal(np.log(factor), 0.3, 2000)
    frame = compare_latencies(_frame("q", a), _frame("q", b))
    assert frame.verdict.tolist() == [verdict]


def test_runs_are_compared_from_their_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    base, cand = new_run("a", root=tmp_path), new_run("b", root=tmp_path)
    base.write_frame("workload_latencies", _frame("q", rng.lognormal(0, 0.2, 500)))
    cand.write_frame("workload_latencies", _frame("q", rng.lognormal(np.log(1.3), 0.2, 500)))
    result = compare_runs(base, cand)
    assert result.regressions["query"].tolist() == ["q"]
    other = new_run("c", root=tmp_path)
    other.write_frame("workload_latencies", _frame("z", rng.lognormal(0, 0.2, 50)))
    with pytest.raises(RunError, match="share no query"):
        compare_runs(base, other)
