"""The interleaved timing of an A/B: rounds of every query on both sides, in a random order.

One connection per side, both open for the whole run. First a warm-up on each side, not measured:
every query :data:`~ibcbench.bench.timing.PLAN_CACHE_WARMUP` times, prepared, cycling through the
parameters (the state :func:`~ibcbench.bench.timing.time_query` leaves a statement in). Then rounds:
in each, the queries in a random order, and for each query the two sides in a random order (seeded
by ``seed``, recorded), then the query ``repetitions`` times on each side with the same parameter
sets, alternating sides in an ABBA pattern (A B, B A, A B, ...) so a burst of load during the round
falls on both; the round's sample is the ratio of the two sides' medians, head / base.

Writes run inside a transaction that is rolled back, on both sides alike (the statement is timed, not
the ``BEGIN``/``ROLLBACK`` around it), so neither side's data changes.

The run stops when every query's interval (:func:`~ibcbench.bench.ab.stats.ratio_interval`) is
within the target precision, with at least ``min_rounds`` rounds; or at ``max_rounds``; or when
``budget_s`` seconds of rounds are spent. Like the timing loop, precision is checked at
geometrically spaced round counts (every 10% more), not after every round.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import psycopg

from ibcbench.bench.ab.sides import SIDES
from ibcbench.bench.ab.stats import is_precise, per_query_confidence, ratio_interval
from ibcbench.bench.timing import PLAN_CACHE_WARMUP
from ibcbench.bench.workload.queries import Workload, WorkloadQuery

StoppedBy = Literal["precision", "rounds", "budget"]


@dataclass(frozen=True)
class RoundsPolicy:
    """How many rounds: floor, cap, budget, the precision to stop at, repetitions per side, and the
    family confidence of all queries' intervals together (see :func:`per_query_confidence`)."""

    max_rounds: int = 40
    min_rounds: int = 8
    budget_s: float = 120.0
    target_rel: float | None = 0.03
    repetitions: int = 5
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.max_rounds < 2:
            raise ValueError(
                f"max_rounds must be at least 2 (an interval needs two), got {self.max_rounds}"
            )
        if not 2 <= self.min_rounds <= self.max_rounds:
            raise ValueError(
                f"min_rounds must be between 2 and max_rounds ({self.max_rounds}), got {self.min_rounds}"
            )
        if self.budget_s <= 0:
            raise ValueError(f"budget_s must be greater than 0, got {self.budget_s}")
        if self.target_rel is not None and not 0 < self.target_rel < 1:
            raise ValueError(
                f"target_rel must be between 0 and 1 (0.03 is ±3%), got {self.target_rel}"
            )
        if self.repetitions < 1:
            raise ValueError(f"repetitions must be at least 1, got {self.repetitions}")


@dataclass(frozen=True)
class RoundsResult:
    """Per query, per round: both sides' medians (ms) and the ratio; the order each round ran in."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    order: list[dict[str, Any]] = field(default_factory=list)
    rounds: int = 0
    stopped_by: StoppedBy = "rounds"
    elapsed_s: float = 0.0
    warmup_runs: int = 0

    def ratios(self, query: str) -> list[float]:
        return [s["ratio"] for s in self.samples if s["query"] == query]

    def medians_ms(self, query: str, side: str) -> list[float]:
        return [s[f"{side}_ms"] for s in self.samples if s["query"] == query]


def _execute_ms(conn: psycopg.Connection, query: WorkloadQuery, params: Sequence[Any]) -> float:
    """One execution's milliseconds; a write inside a transaction that is rolled back."""
    if query.kind == "write":
        with conn.transaction(force_rollback=True):
            started = time.perf_counter()
            cur = conn.execute(query.sql, params, prepare=True)
            if cur.description:
                cur.fetchall()
            return (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    conn.execute(query.sql, params, prepare=True).fetchall()
    return (time.perf_counter() - started) * 1000


def warm_up(
    conns: dict[str, psycopg.Connection], workload: Workload, params: dict[str, list[tuple]]
) -> int:
    """Run every query :data:`PLAN_CACHE_WARMUP` times on each side, unmeasured; the count per side."""
    done = 0
    for query in workload.queries:
        values = params[query.name]
        for i in range(PLAN_CACHE_WARMUP):
            for side in SIDES:
                _execute_ms(conns[side], query, values[i % len(values)])
        done += PLAN_CACHE_WARMUP
    return done


def _precise(samples: list[dict[str, Any]], names: list[str], policy: RoundsPolicy) -> bool:
    if policy.target_rel is None:
        return False
    confidence = per_query_confidence(policy.confidence, len(names))
    for name in names:
        ratios = [s["ratio"] for s in samples if s["query"] == name]
        if not is_precise(ratio_interval(ratios, confidence), policy.target_rel):
            return False
    return True


def run_rounds(
    conns: dict[str, psycopg.Connection],
    workload: Workload,
    params: dict[str, list[tuple]],
    *,
    policy: RoundsPolicy,
    seed: int,
) -> RoundsResult:
    """Warm up, then interleaved rounds until precise, out of rounds or out of budget."""
    rng = np.random.default_rng(seed)
    warmed = warm_up(conns, workload, params)
    queries = list(workload.queries)
    names = [q.name for q in queries]
    samples: list[dict[str, Any]] = []
    order: list[dict[str, Any]] = []
    started = time.perf_counter()
    check_at = policy.min_rounds
    stopped: StoppedBy = "rounds"
    k = policy.repetitions
    for round_no in range(policy.max_rounds):
        for qi in rng.permutation(len(queries)):
            query = queries[int(qi)]
            values = params[query.name]
            chosen = [values[(round_no * k + j) % len(values)] for j in range(k)]
            sides = list(SIDES) if rng.random() < 0.5 else list(reversed(SIDES))
            times: dict[str, list[float]] = {side: [] for side in SIDES}
            for j, p in enumerate(chosen):
                for side in sides if j % 2 == 0 else reversed(sides):
                    times[side].append(_execute_ms(conns[side], query, p))
            medians = {side: float(np.median(times[side])) for side in SIDES}
            order.append({"round": round_no, "query": query.name, "first": sides[0]})
            samples.append(
                {
                    "round": round_no,
                    "query": query.name,
                    "base_ms": medians["base"],
                    "head_ms": medians["head"],
                    "ratio": medians["head"] / max(medians["base"], 1e-9),
                }
            )
        rounds = round_no + 1
        elapsed = time.perf_counter() - started
        if rounds < policy.min_rounds:
            continue
        if rounds >= check_at:
            check_at = max(rounds + 1, math.ceil(rounds * 1.1))
            if _precise(samples, names, policy):
                stopped = "precision"
                break
        if elapsed >= policy.budget_s:
            stopped = "budget"
            break
    return RoundsResult(
        samples=samples,
        order=order,
        rounds=len({s["round"] for s in samples}),
        stopped_by=stopped,
        elapsed_s=time.perf_counter() - started,
        warmup_runs=warmed,
    )
