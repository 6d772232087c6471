"""``run_ab``: the paired, interleaved A/B of two changes to one dataset, on one server.

Its phases, in order: check the inputs (before any work), find or build the dataset, copy it into
the two sides and apply their changes (:mod:`~ibcbench.bench.ab.sides`), sample the workload's
parameters once (from the base side, in a session of its own: the two timing sessions run the
same statements, nothing else; both sides get the same parameters), time interleaved rounds
(:mod:`~ibcbench.bench.ab.rounds`), EXPLAIN every query on both sides
(:mod:`~ibcbench.bench.ab.counters`), judge each query (:mod:`~ibcbench.bench.ab.stats`), drop both
sides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from ibcbench.bench.ab.counters import QueryCounters, capture_counters
from ibcbench.bench.ab.result import ABResult
from ibcbench.bench.ab.rounds import RoundsPolicy, RoundsResult, run_rounds
from ibcbench.bench.ab.sides import SIDES, SideSpec, built_sides
from ibcbench.bench.ab.stats import PRACTICAL_RATIO, per_query_confidence, ratio_interval, verdict
from ibcbench.bench.workload.queries import Workload, default_workload, sample_parameters
from ibcbench.db import connect, resolve_dsn

#: parameter sets sampled per query (both sides use the same ones)
PARAMETER_SETS = 50


def check_ab(
    base: SideSpec, head: SideSpec, *, scale: str, seed: int, queries: Sequence[str] | None
) -> Workload:
    """Refuse bad inputs in one line, before any work; the workload to time."""
    from ibcbench.data.datasets import validate_dataset

    validate_dataset(scale, seed)
    base.check()
    head.check()
    return default_workload().subset(list(queries) if queries else None)


def run_ab(
    dsn: str | None = None,
    *,
    base: SideSpec,
    head: SideSpec,
    scale: str = "tiny",
    seed: int = 42,
    policy: RoundsPolicy | None = None,
    queries: Sequence[str] | None = None,
    practical_ratio: float = PRACTICAL_RATIO,
    on_dataset: Callable[[Any], None] | None = None,
) -> ABResult:
    """Time the workload on ``base`` and ``head`` (copies of the ``scale``/``seed`` dataset changed by
    each side's spec) in interleaved rounds and compare their plans' work; see the module's doc.
    ``on_dataset`` gets the dataset's :class:`~ibcbench.data.datasets.DatasetInfo` once found."""
    from ibcbench.data.datasets import ensure_dataset_info

    policy = policy or RoundsPolicy()
    workload = check_ab(base, head, scale=scale, seed=seed, queries=queries)
    info = ensure_dataset_info(dsn, scale=scale, seed=seed)
    if on_dataset is not None:
        on_dataset(info)
    specs = {"base": base, "head": head}
    with built_sides(resolve_dsn(dsn), info.database, specs) as sides:
        # a session of its own, closed before the timing: a timing session that had sampled (a scan
        # of every table) timed hourly_packet_stats x0.87 against one that had not, in A/A runs
        with connect(sides.dsns["base"], autocommit=True) as sampler:
            params = sample_parameters(sampler, workload, n=PARAMETER_SETS, seed=seed)
        with (
            connect(sides.dsns["base"], autocommit=True) as b,
            connect(sides.dsns["head"], autocommit=True) as h,
        ):
            conns = {"base": b, "head": h}
            rounds = run_rounds(conns, workload, params, policy=policy, seed=seed)
            counters = capture_counters(
                conns, [(q.name, q.sql, params[q.name][0]) for q in workload.queries]
            )
        applied = sides.applied
    confidence = per_query_confidence(policy.confidence, len(workload.queries))
    rows = [
        _row(q.name, rounds, c, confidence, practical_ratio)
        for q, c in zip(workload.queries, counters, strict=True)
    ]
    return ABResult(
        queries=rows,
        samples=rounds.samples,
        order=rounds.order,
        seed=seed,
        scale=scale,
        rounds=rounds.rounds,
        stopped_by=rounds.stopped_by,
        elapsed_s=rounds.elapsed_s,
        practical_ratio=practical_ratio,
        sides={side: {**specs[side].describe(), "applied": applied[side]} for side in SIDES},
        policy=asdict(policy),
    )


def _row(
    name: str,
    rounds: RoundsResult,
    counters: QueryCounters,
    confidence: float,
    practical_ratio: float,
) -> dict[str, Any]:
    import numpy as np

    interval = ratio_interval(rounds.ratios(name), confidence)
    timed = verdict(interval, practical_ratio)
    final = "regression" if counters.regression else timed
    return {
        "query": name,
        "rounds": interval.n,
        "ratio": interval.ratio,
        "low": interval.low,
        "high": interval.high,
        "mde": interval.mde,
        "confidence": round(confidence, 5),
        "timing_verdict": timed,
        "verdict": final,
        "base_p50_ms": float(np.median(rounds.medians_ms(name, "base"))),
        "head_p50_ms": float(np.median(rounds.medians_ms(name, "head"))),
        **counters.as_row(),
    }
