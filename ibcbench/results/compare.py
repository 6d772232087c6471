"""Comparing runs: per query, the ratio of median latencies with a block-bootstrap interval.

Latencies of one run are not independent draws: neighbours in time share the server's state
(cache, checkpoints, autovacuum, the other clients), and a second run of the same configuration
differs from the first by more than the spread within one run. Resampling single latencies as if
independent gives intervals far too narrow. The resampling unit here is therefore a block of time:
each run's measured window is cut into ``BLOCK_S`` blocks (at least ``MIN_BLOCKS`` of them, shorter
blocks for short runs) and whole blocks are drawn with replacement; when ``MIN_RUNS`` or more runs
are given on a side (repetitions), each run is one block instead. The point ratio is median(candidate) /
median(baseline) over all measured latencies. A verdict is "slower" or "faster" only when the
interval excludes 1 (and the ratio is beyond ``noise``), else "no difference".

Two runs are compared only when they ran the same engine, client count, arrival rate and scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ibcbench.errors import RunError
from ibcbench.results.runs import Run

BLOCK_S = 1.0
MIN_BLOCKS = 10
#: repetitions per side from which each run is one block
MIN_RUNS = 5
#: blocks used per run when a frame has no time column (runs recorded before it): row order
_ROW_BLOCKS = 20
_CHUNK = 64  # bootstrap replicates computed at once


def time_blocks(frame: pd.DataFrame, *, block_s: float = BLOCK_S) -> np.ndarray:
    """A block number per row: ``block_s`` slices of ``t_s`` (start within the measured window),
    shortened so a run has at least ``MIN_BLOCKS``; without ``t_s``, equal slices in row order."""
    n = len(frame)
    if "t_s" not in frame.columns:
        return (np.arange(n) * _ROW_BLOCKS // max(n, 1)).astype(np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    t = frame["t_s"].to_numpy(dtype=float)
    t = t - t.min()
    span = float(t.max())
    if span <= 0:
        return np.zeros(n, dtype=np.int64)
    count = max(MIN_BLOCKS, int(np.ceil(span / block_s - 1e-9)))
    return np.minimum(np.floor(t / span * count), count - 1).astype(np.int64)


def _median_replicates(
    values: np.ndarray, blocks: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Medians of ``n_boot`` resamples drawing whole blocks with replacement (weighted median)."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    _, block_of = np.unique(blocks[order], return_inverse=True)
    k = int(block_of.max()) + 1
    out = np.empty(n_boot)
    for lo in range(0, n_boot, _CHUNK):
        m = min(_CHUNK, n_boot - lo)
        counts = rng.multinomial(k, np.full(k, 1.0 / k), size=m)  # draws of each block
        cum = np.cumsum(counts[:, block_of], axis=1)
        half = cum[:, -1] / 2.0
        out[lo : lo + m] = sorted_values[np.argmax(cum >= half[:, None], axis=1)]
    return out


def bootstrap_ratio(
    a: np.ndarray,
    b: np.ndarray,
    *,
    blocks_a: np.ndarray | None = None,
    blocks_b: np.ndarray | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """median(b) / median(a) over all values, and its block-bootstrap percentile interval.

    ``blocks_a``/``blocks_b`` give each value's block (by default each value is its own block,
    which is right only for independent values)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise RunError("cannot compare an empty sample")
    ratio = float(np.median(b) / np.median(a))
    rng = np.random.default_rng(seed)
    ba = np.arange(len(a)) if blocks_a is None else np.asarray(blocks_a)
    bb = np.arange(len(b)) if blocks_b is None else np.asarray(blocks_b)
    ma = _median_replicates(a, ba, n_boot, rng)
    mb = _median_replicates(b, bb, n_boot, rng)
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
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    noise: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
    block_column: str | None = None,
) -> pd.DataFrame:
    """Per query present in both: medians, ratio b/a with its block-bootstrap CI and its width,
    and a verdict: "slower"/"faster" when the interval excludes 1 and the ratio is beyond 1 ±
    ``noise``, else "no difference". Blocks: ``block_column`` if given, else time blocks."""
    blocks = {
        id(f): (f[block_column].to_numpy() if block_column else time_blocks(f)) for f in (a, b)
    }
    rows = []
    for query in sorted(set(a["query"].astype(str)) & set(b["query"].astype(str))):
        sel_a = ((a["query"].astype(str) == query) & a.ok).to_numpy()
        sel_b = ((b["query"].astype(str) == query) & b.ok).to_numpy()
        la, lb = a.latency_ms.to_numpy()[sel_a], b.latency_ms.to_numpy()[sel_b]
        if len(la) == 0 or len(lb) == 0:
            continue
        ratio, low, high = bootstrap_ratio(
            la,
            lb,
            blocks_a=blocks[id(a)][sel_a],
            blocks_b=blocks[id(b)][sel_b],
            n_boot=n_boot,
            seed=seed,
        )
        if low > 1 and ratio > 1 + noise:
            verdict = "slower"
        elif high < 1 and ratio < 1 - noise:
            verdict = "faster"
        else:
            verdict = "no difference"
        rows.append(
            {
                "query": query,
                "baseline_p50_ms": round(float(np.median(la)), 3),
                "candidate_p50_ms": round(float(np.median(lb)), 3),
                "ratio": round(ratio, 3),
                "ci_low": round(low, 3),
                "ci_high": round(high, 3),
                "ci_width": round(high - low, 3),
                "verdict": verdict,
                "baseline_n": len(la),
                "candidate_n": len(lb),
                "baseline_blocks": len(np.unique(blocks[id(a)][sel_a])),
                "candidate_blocks": len(np.unique(blocks[id(b)][sel_b])),
            }
        )
    return pd.DataFrame(rows)


#: what two runs must share to be compared: (key, in the result's manifest section? else top level)
_SAME = (("engine", True), ("clients", True), ("rate_qps", True), ("scale", False))


def check_comparable(runs: Sequence[Run], *, name: str = "workload") -> None:
    """Raise unless every run used the same engine, clients, arrival rate and scale."""
    seen: dict[str, tuple[str, object]] = {}
    for run in runs:
        manifest = run.manifest()
        section = manifest.get(name) or {}
        for key, in_section in _SAME:
            source = section if in_section else manifest
            if key not in source:
                continue
            value = source[key]
            if key in seen and seen[key][1] != value:
                first, other = seen[key]
                raise RunError(
                    f"runs {first!r} and {run.id!r} differ in {key} ({other!r} vs {value!r}): "
                    f"compare runs of the same {key}"
                )
            seen.setdefault(key, (run.id, value))


def _pooled(runs: Sequence[Run], name: str) -> tuple[pd.DataFrame, str]:
    """The runs' latencies in one frame with a block per row: one block per run when there are
    ``MIN_RUNS`` or more (repetitions are the resampling unit), else each run's time blocks."""
    frames = []
    for i, run in enumerate(runs):
        f = run.read_frame(f"{name}_latencies")
        blocks = i if len(runs) >= MIN_RUNS else time_blocks(f) + i * (1 << 32)
        frames.append(f.assign(block=blocks))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame, "+".join(r.id for r in runs)


def compare_runs(
    baseline: Run | Sequence[Run],
    candidate: Run | Sequence[Run],
    *,
    name: str = "workload",
    **kwargs: float,
) -> RunComparison:
    """Compare the ``<name>_latencies`` results of run folders (one or several per side)."""
    base_runs = [baseline] if isinstance(baseline, Run) else list(baseline)
    cand_runs = [candidate] if isinstance(candidate, Run) else list(candidate)
    if not base_runs or not cand_runs:
        raise RunError("give at least one run on each side")
    check_comparable([*base_runs, *cand_runs], name=name)
    a, base_id = _pooled(base_runs, name)
    b, cand_id = _pooled(cand_runs, name)
    frame = compare_latencies(a, b, block_column="block", **kwargs)  # type: ignore[arg-type]
    if frame.empty:
        raise RunError(f"runs {base_id!r} and {cand_id!r} share no query to compare")
    return RunComparison(frame, base_id, cand_id)
