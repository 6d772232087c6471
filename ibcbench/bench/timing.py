"""Timing one query: warm-up, then measured executions until its median is known well enough.

Every benchmark's timing loop is :func:`time_query`. It runs in two phases on the caller's connection:

1. **Warm-up**, not measured. The statement is prepared (``prepare=True``, as a service on pgx or on
   psycopg after ``prepare_threshold`` executions would have it), and PostgreSQL's plan cache plans
   the first five executions of a prepared statement with their parameter values (custom plans) and
   only from the sixth on may switch to a generic plan. Six warm-up executions therefore leave the
   statement in the state it keeps: measured executions never mix unprepared, custom-plan and
   generic-plan runs. The plan cache is per statement, not per value: the warm-up cycles through the
   parameter sets like the measured phase does. With ``prepare=None`` psycopg prepares only after
   ``conn.prepare_threshold`` executions, and the default warm-up grows by that many.
2. **Measured** executions, cycling through the parameter sets, until one of:
   ``"precision"``, the p50's confidence interval lies within ±``target_rel_ci`` (5%) of the p50, with
   at least ``min_runs`` executions; or ``"budget"``, ``budget_s`` seconds of measuring or
   ``max_runs`` executions are spent. The result records which (``stopped_by``).

The interval of the p50 is the distribution-free **order-statistic (binomial) interval** of the
median: with ``n`` samples sorted, ``[x_(l), x_(n+1-l)]`` where ``l`` is the largest rank with
``P(B <= l - 1) <= (1 - confidence) / 2`` for ``B ~ Binomial(n, 1/2)``; its coverage is at least
``confidence`` for independent samples of any continuous distribution, with no resampling and no
random numbers. Below 6 samples no such interval exists at 95% (``None``), so precision cannot stop a
loop that early. Two caveats: consecutive executions on one connection are not fully independent
(caches, background work), so the interval is narrower than the run-to-run spread and serves as a stop
rule for "enough samples here", not as an A/B interval between runs; and looking at it repeatedly
while sampling (optional stopping) lowers its coverage a little, which is why it is checked at
geometrically spaced counts (every 10% more samples), not after every execution.

``repetitions`` arguments of the benchmarks are the ``max_runs`` of their loops: a notebook that passes
``repetitions=100`` gets at most 100 measured executions per query, fewer where the p50 is precise first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import sql

StoppedBy = Literal["precision", "budget"]
#: executions PostgreSQL plans with custom plans before it may choose a generic one (plancache.c), + 1
PLAN_CACHE_WARMUP = 6


@dataclass(frozen=True)
class TimingPolicy:
    """How long to time a query: warm-up, the precision to reach, the floor and the caps.

    ``warmup_runs=None`` is :data:`PLAN_CACHE_WARMUP`, plus the connection's ``prepare_threshold``
    with ``prepare=None`` (psycopg's default: prepare after that many executions). ``target_rel_ci=None`` never stops for precision (the loop
    runs to ``max_runs`` or ``budget_s``).
    """

    max_runs: int = 1000
    min_runs: int = 10
    budget_s: float = 5.0
    target_rel_ci: float | None = 0.05
    confidence: float = 0.95
    warmup_runs: int | None = None
    warmup_s: float = 0.0
    prepare: bool | None = True

    def __post_init__(self) -> None:
        if self.max_runs < 1:
            raise ValueError(f"max_runs must be at least 1, got {self.max_runs}")
        if not 1 <= self.min_runs <= self.max_runs:
            raise ValueError(
                f"min_runs must be between 1 and max_runs ({self.max_runs}), got {self.min_runs}"
            )
        if self.budget_s <= 0:
            raise ValueError(f"budget_s must be greater than 0, got {self.budget_s}")
        if self.target_rel_ci is not None and not 0 < self.target_rel_ci < 1:
            raise ValueError(
                f"target_rel_ci must be between 0 and 1 (0.05 is ±5%), got {self.target_rel_ci}"
            )
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, got {self.confidence}")
        if self.warmup_runs is not None and self.warmup_runs < 0:
            raise ValueError(f"warmup_runs must be 0 or more, got {self.warmup_runs}")
        if self.warmup_s < 0:
            raise ValueError(f"warmup_s must be 0 or more, got {self.warmup_s}")

    def with_max_runs(self, repetitions: int) -> TimingPolicy:
        """This policy capped at ``repetitions`` measured executions (the floor lowered to fit)."""
        if repetitions < 1:
            raise ValueError(f"repetitions must be at least 1, got {repetitions}")
        return replace(self, max_runs=repetitions, min_runs=min(self.min_runs, repetitions))


@dataclass(frozen=True)
class TimingResult:
    """Measured executions of one query, in milliseconds; warm-up executions are not among them.

    ``p50_ci_low_ms``/``p50_ci_high_ms``: the order-statistic interval of the median at
    ``confidence`` (None with too few samples). ``elapsed_s``: the measured phase's wall time.
    """

    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    p50_ci_low_ms: float | None
    p50_ci_high_ms: float | None
    confidence: float
    stopped_by: StoppedBy
    warmup_runs: int = 0
    elapsed_s: float = 0.0
    samples_ms: tuple[float, ...] = field(default=(), repr=False)

    @property
    def p50_ci_rel(self) -> float | None:
        """The interval's larger half-width as a share of the p50 (0.05 is ±5%)."""
        if self.p50_ci_low_ms is None or self.p50_ci_high_ms is None or self.p50_ms <= 0:
            return None
        return (
            max(self.p50_ms - self.p50_ci_low_ms, self.p50_ci_high_ms - self.p50_ms) / self.p50_ms
        )

    def as_row(self, digits: int = 4) -> dict[str, Any]:
        """The columns a benchmark's latency frame takes from it, rounded to ``digits``."""

        def r(value: float | None) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "n": self.n,
            "p50_ms": r(self.p50_ms),
            "p95_ms": r(self.p95_ms),
            "p99_ms": r(self.p99_ms),
            "mean_ms": r(self.mean_ms),
            "p50_ci_low_ms": r(self.p50_ci_low_ms),
            "p50_ci_high_ms": r(self.p50_ci_high_ms),
            "stopped_by": self.stopped_by,
            "warmup_runs": self.warmup_runs,
        }


# ---- pure parts: no database ------------------------------------------------------------------
def latency_summary(
    samples_ms: Sequence[float] | np.ndarray, *, digits: int | None = None
) -> dict[str, float]:
    """``mean_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``max_ms`` of the samples (linear-interpolated
    percentiles, as numpy's default); NaN each when there are none."""
    lat = np.asarray(samples_ms, dtype=float)
    if lat.size == 0:
        return dict.fromkeys(("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"), float("nan"))
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    out = {
        "mean_ms": float(lat.mean()),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(lat.max()),
    }
    return out if digits is None else {k: round(v, digits) for k, v in out.items()}


@lru_cache(maxsize=4096)
def median_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks ``(l, n + 1 - l)`` of the order-statistic interval of the median of ``n`` samples:
    ``l`` is the largest rank with ``P(B <= l - 1) <= (1 - confidence) / 2``, ``B ~ Binomial(n, 1/2)``.
    None when even ``l = 1`` (the sample's min and max) does not reach ``confidence``."""
    if n < 1:
        return None
    tail = (1.0 - confidence) / 2.0
    # start a few standard deviations below the middle: the mass left of it is below 1e-15
    start = max(0, math.floor(n / 2 - 8 * math.sqrt(n) / 2))
    log_half = -n * math.log(2.0)
    lgn = math.lgamma(n + 1)
    cdf, k = 0.0, start
    while k <= n // 2:
        pmf = math.exp(lgn - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half)
        if cdf + pmf > tail:
            break
        cdf += pmf
        k += 1
    if k < 1:
        return None
    return k, n + 1 - k


def median_interval(
    samples_ms: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float] | None:
    """The order-statistic confidence interval of the samples' median (None with too few samples)."""
    ranks = median_ranks(len(samples_ms), confidence)
    if ranks is None:
        return None
    ordered = np.sort(np.asarray(samples_ms, dtype=float))
    return float(ordered[ranks[0] - 1]), float(ordered[ranks[1] - 1])


def is_precise(
    samples_ms: Sequence[float] | np.ndarray, target_rel_ci: float, confidence: float = 0.95
) -> bool:
    """Whether the p50's interval lies within ±``target_rel_ci`` of the p50 on both sides."""
    interval = median_interval(samples_ms, confidence)
    if interval is None:
        return False
    p50 = float(np.median(samples_ms))
    if p50 <= 0:
        return interval[0] == interval[1]
    return max(p50 - interval[0], interval[1] - p50) <= target_rel_ci * p50


def stop_reason(
    samples_ms: Sequence[float] | np.ndarray, elapsed_s: float, policy: TimingPolicy
) -> StoppedBy | None:
    """Why a loop with these samples, after ``elapsed_s`` of measuring, stops now (None: go on).

    Below ``min_runs`` it never stops; precision wins over the budget when both hold.
    """
    n = len(samples_ms)
    if n < policy.min_runs:
        return None
    if policy.target_rel_ci is not None and is_precise(
        samples_ms, policy.target_rel_ci, policy.confidence
    ):
        return "precision"
    if n >= policy.max_runs or elapsed_s >= policy.budget_s:
        return "budget"
    return None


def summarize_timing(
    samples_ms: Sequence[float] | np.ndarray,
    *,
    stopped_by: StoppedBy,
    confidence: float = 0.95,
    warmup_runs: int = 0,
    elapsed_s: float = 0.0,
) -> TimingResult:
    """A :class:`TimingResult` from measured samples (at least one)."""
    if len(samples_ms) == 0:
        raise ValueError("no samples to summarize: measure at least one execution")
    stats = latency_summary(samples_ms)
    interval = median_interval(samples_ms, confidence)
    return TimingResult(
        n=len(samples_ms),
        p50_ms=stats["p50_ms"],
        p95_ms=stats["p95_ms"],
        p99_ms=stats["p99_ms"],
        mean_ms=stats["mean_ms"],
        max_ms=stats["max_ms"],
        p50_ci_low_ms=None if interval is None else interval[0],
        p50_ci_high_ms=None if interval is None else interval[1],
        confidence=confidence,
        stopped_by=stopped_by,
        warmup_runs=warmup_runs,
        elapsed_s=elapsed_s,
        samples_ms=tuple(float(x) for x in samples_ms),
    )


def _next_check(n: int) -> int:
    return max(n + 1, math.ceil(n * 1.1))


# ---- on a connection ---------------------------------------------------------------------------
def time_once_ms(
    conn: psycopg.Connection, statement: str | sql.Composable, params: Sequence[Any] | None = None
) -> float:
    """Milliseconds of one execution of ``statement``, for what runs once (DDL, a load, a refresh):
    no warm-up, no repetitions, nothing fetched."""
    started = time.perf_counter()
    conn.execute(statement, params)  # type: ignore[arg-type]
    return (time.perf_counter() - started) * 1000


def time_query(
    conn: psycopg.Connection,
    query: str | sql.Composable,
    params: Sequence[Sequence[Any] | None] | None = None,
    *,
    policy: TimingPolicy | None = None,
) -> TimingResult:
    """Time ``query`` on ``conn``: warm-up, then measured executions (rows fetched) until precise or
    out of budget; execution ``i`` uses ``params[i % len(params)]`` (no parameters when None)."""
    policy = policy or TimingPolicy()
    values: Sequence[Sequence[Any] | None] = params if params else [None]
    warmup = policy.warmup_runs
    if warmup is None:
        warmup = PLAN_CACHE_WARMUP
        if policy.prepare is None:  # psycopg prepares after prepare_threshold executions
            warmup += int(conn.prepare_threshold or 0)
    prepare = policy.prepare

    def run(i: int) -> float:
        started = time.perf_counter()
        conn.execute(query, values[i % len(values)], prepare=prepare).fetchall()  # type: ignore[arg-type]
        return (time.perf_counter() - started) * 1000

    warm_started = time.perf_counter()
    done = 0
    while done < warmup or time.perf_counter() - warm_started < policy.warmup_s:
        run(done)
        done += 1
    samples: list[float] = []
    started = time.perf_counter()
    check_at = policy.min_runs
    reason: StoppedBy | None = None
    while reason is None:
        samples.append(run(len(samples)))
        elapsed = time.perf_counter() - started
        n = len(samples)
        if n < policy.min_runs:
            continue
        if n >= check_at or n >= policy.max_runs or elapsed >= policy.budget_s:
            reason = stop_reason(samples, elapsed, policy)
            if n >= check_at:
                check_at = _next_check(n)
    return summarize_timing(
        samples,
        stopped_by=reason,
        confidence=policy.confidence,
        warmup_runs=done,
        elapsed_s=elapsed,
    )
