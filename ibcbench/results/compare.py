"""Comparing two runs: per query, the ratio of median latencies with a bootstrap confidence interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ibcbench.errors import RunError
from ibcbench.results.runs import Run

MAX_SAMPLES = 5_000


def bootstrap_ratio(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """median(b) / median(a) and its percentile-bootstrap interval."""
    if len(a) == 0 or len(b) == 0:
        raise RunError("cannot compare an empty sample")
    rng = np.random.default_rng(seed)
    a = rng.choice(a, MAX_SAMPLES, replace=False) if len(a) > MAX_SAMPLES else np.asarray(a)
    b = rng.choice(b, MAX_SAMPLES, replace=False) if len(b) > MAX_SAMPLES else np.asarray(b)
    ratio = float(np.median(b) / np.median(a))
    ma = np.median(a[rng.integers(0, len(a), (n_boot, len(a)))], axis=1)
    mb = np.median(b[rng.integers(0, len(b), (n_boot, len(b)))], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(mb / ma, [tail, 100 - tail])
    return ratio, float(low), float(high)


@dataclass(frozen=True)
class RunComparison:
    frame: pd.DataFrame
    baseline: str
    candidate: str

    @property
    def regressions(self) -> pd.DataFrame:
        return self.frame[self.frame.verdict == "slower"]


def compare_latencies(
    a: pd.DataFrame, b: pd.DataFrame, *, noise: float = 0.05, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Per query present in both: medians, ratio b/a with its CI, and a verdict (outside 1 ± noise)."""
    rows = []
    for query in sorted(set(a["query"].astype(str)) & set(b["query"].astype(str))):
        la = a[(a["query"].astype(str) == query) & a.ok].latency_ms.to_numpy()
        lb = b[(b["query"].astype(str) == query) & b.ok].latency_ms.to_numpy()
        if len(la) == 0 or len(lb) == 0:
            continue
        ratio, low, high = bootstrap_ratio(la, lb, n_boot=n_boot, seed=seed)
        verdict = "slower" if low > 1 + noise else "faster" if high < 1 - noise else "same"
        rows.append({
            "query": query, "baseline_p50_ms": round(float(np.median(la)), 3),
            "candidate_p50_ms": round(float(np.median(lb)), 3), "ratio": round(ratio, 3),
            "ci_low": round(low, 3), "ci_high": round(high, 3), "verdict": verdict,
            "baseline_n": len(la), "candidate_n": len(lb),
        })  # fmt: skip
    return pd.DataFrame(rows)


def compare_runs(
    baseline: Run, candidate: Run, *, name: str = "workload", **kwargs: float
) -> RunComparison:
    """Compare the ``<name>_latencies`` results of two run folders."""
    a = baseline.read_frame(f"{name}_latencies")
    b = candidate.read_frame(f"{name}_latencies")
    frame = compare_latencies(a, b, **kwargs)  # type: ignore[arg-type]
    if frame.empty:
        raise RunError(f"runs {baseline.id!r} and {candidate.id!r} share no query to compare")
    return RunComparison(frame, baseline.id, candidate.id)
