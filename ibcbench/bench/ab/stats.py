"""The paired A/B's statistics, pure: a t-interval on log ratios, its verdict and the smallest change
a run could detect.

Each round of an A/B gives one sample per query: ``r = median(head) / median(base)`` over the round's
``k`` repetitions on each side, both sides run back to back in a random order with the same
parameters. Drift of the machine (another job starting, caches, CPU frequency) that lasts longer than
a round hits both sides of that round alike and cancels in the ratio; what remains is closer to
independent from round to round than raw latencies are. The interval is then the t-interval of
the mean of ``log r`` over the rounds, back-transformed:

    ratio = exp(mean(log r)),  interval = exp(mean(log r) ± t(1 - alpha/2, n - 1) * sd / sqrt(n))

that is a geometric mean ratio and its interval. The **minimum detectable effect** (MDE) is the true
ratio a run with this spread and this many rounds would flag with 80% power:
``exp((t(1 - alpha/2, n - 1) + t(0.8, n - 1)) * sd / sqrt(n))`` — the interval's half-width (in log)
scaled by ``(t_alpha + t_power) / t_alpha``. A change below the MDE may be real but this run could
not see it reliably.

An A/B asks one question of the whole workload ("did anything get slower?"), so the intervals are
made at a family confidence: with ``m`` queries each query's interval is at ``1 - (1 - confidence) /
m`` (Bonferroni, :func:`per_query_confidence`), and the chance that any query of an A/A run is flagged
stays below ``1 - confidence`` when the rounds' log ratios are independent.

No SciPy: Student's t quantile is exact for 1 and 2 degrees of freedom and a Cornish-Fisher expansion
around the normal quantile from 3 on (error below 0.002 at 95% for 3 degrees of freedom, less with more).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

Verdict = Literal["regression", "improvement", "no difference"]
#: the practical threshold: a change smaller than x1.05 (or 1/1.05) is "no difference" even when
#: the interval excludes 1
PRACTICAL_RATIO = 1.05
#: the power the MDE is stated at
MDE_POWER = 0.8


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile at probability ``p`` with ``df`` degrees of freedom (see the module)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be between 0 and 1, got {p}")
    if df < 1:
        raise ValueError(f"df must be at least 1, got {df}")
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = NormalDist().inv_cdf(p)
    v = float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
    )


@dataclass(frozen=True)
class RatioInterval:
    """The geometric mean of per-round ratios head/base, its t-interval and the run's MDE.

    ``half_width_log``: the interval's half-width in log units (``log(high / ratio)``); ``mde``: the
    true ratio (above 1) this run would detect with 80% power (see the module)."""

    n: int
    ratio: float
    low: float
    high: float
    half_width_log: float
    mde: float
    confidence: float

    @property
    def holds_one(self) -> bool:
        return self.low <= 1.0 <= self.high


def per_query_confidence(confidence: float, queries: int) -> float:
    """Each of ``queries`` intervals' confidence so that all hold together at ``confidence``."""
    if queries < 1:
        raise ValueError(f"queries must be at least 1, got {queries}")
    return 1 - (1 - confidence) / queries


def ratio_interval(ratios: Sequence[float] | np.ndarray, confidence: float = 0.95) -> RatioInterval:
    """The interval over rounds of ``ratios`` (each > 0; at least two rounds)."""
    values = np.asarray(ratios, dtype=float)
    if values.size < 2:
        raise ValueError(f"an interval needs at least 2 rounds, got {values.size}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("ratios must be finite and greater than 0")
    logs = np.log(values)
    n = int(logs.size)
    mean = float(logs.mean())
    se = float(logs.std(ddof=1)) / math.sqrt(n)
    t_alpha = t_quantile(1 - (1 - confidence) / 2, n - 1)
    half = t_alpha * se
    mde = math.exp((t_alpha + t_quantile(MDE_POWER, n - 1)) * se)
    return RatioInterval(
        n=n,
        ratio=math.exp(mean),
        low=math.exp(mean - half),
        high=math.exp(mean + half),
        half_width_log=half,
        mde=mde,
        confidence=confidence,
    )


def verdict(interval: RatioInterval, practical: float = PRACTICAL_RATIO) -> Verdict:
    """``regression`` when the interval lies above 1 and the ratio is at least ``practical``;
    ``improvement`` when it lies below 1 and the ratio is at most ``1 / practical``; else
    ``no difference`` (the interval holds 1, or the change is below the practical threshold)."""
    if interval.low > 1.0 and interval.ratio >= practical:
        return "regression"
    if interval.high < 1.0 and interval.ratio <= 1.0 / practical:
        return "improvement"
    return "no difference"


def is_precise(interval: RatioInterval, target_rel: float) -> bool:
    """Whether the interval lies within x(1 ± ``target_rel``) of the ratio (log half-width at most
    ``log(1 + target_rel)``)."""
    return interval.half_width_log <= math.log1p(target_rel)
