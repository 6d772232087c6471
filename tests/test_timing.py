"""The timing helper: the median's interval and the stop rule without a database, then one real query."""

from __future__ import annotations

import math

import numpy as np
import psycopg
import pytest

from ibcbench.bench.timing import (
    PLAN_CACHE_WARMUP,
    TimingPolicy,
    is_precise,
    latency_summary,
    median_interval,
    median_ranks,
    stop_reason,
    summarize_timing,
    time_query,
)


def _binom_cdf(k: int, n: int) -> float:
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


# published ranks of the distribution-free 95% interval of the median (e.g. Conover, Table A3)
@pytest.mark.parametrize(
    ("n", "ranks"),
    [
        (1, None),
        (5, None),
        (6, (1, 6)),
        (10, (2, 9)),
        (20, (6, 15)),
        (30, (10, 21)),
        (50, (18, 33)),
        (100, (40, 61)),
    ],
)
def test_median_ranks_match_the_binomial_table(n: int, ranks: tuple[int, int] | None) -> None:
    assert median_ranks(n, 0.95) == ranks


@pytest.mark.parametrize("n", [6, 7, 13, 64, 257, 1000, 4097])
def test_median_ranks_are_the_tightest_that_hold_the_confidence(n: int) -> None:
    low, high = median_ranks(n, 0.95)
    assert high == n + 1 - low
    assert 1 - 2 * _binom_cdf(low - 1, n) >= 0.95  # holds its confidence
    assert 1 - 2 * _binom_cdf(low, n) < 0.95  # one rank tighter would not


def test_the_interval_covers_the_true_median_as_promised() -> None:
    rng = np.random.default_rng(7)
    true_median = 1.0  # lognormal(0, 0.5): skewed like latencies
    trials = 2000
    held = 0
    for _ in range(trials):
        low, high = median_interval(rng.lognormal(0.0, 0.5, 30))
        held += low <= true_median <= high
    coverage = held / trials
    assert 0.95 <= coverage <= 0.99  # n=30: ranks (10, 21), exact coverage 0.957


@pytest.mark.parametrize(
    ("samples", "target", "precise"),
    [
        ([1.0] * 10, 0.05, True),
        (list(np.linspace(0.98, 1.02, 20)), 0.05, True),  # ±2% spread: inside ±5%
        (list(np.linspace(0.5, 1.5, 20)), 0.05, False),  # ±50% spread: interval ~ ±12%
        (list(np.linspace(0.5, 1.5, 20)), 0.25, True),
        ([1.0] * 5, 0.05, False),  # too few samples for any 95% interval
        # inside on BOTH sides: a tight high side (1.2 = p50 = upper end) does not hide a wide low one
        ([1.0] * 8 + [1.2] * 12, 0.05, False),
    ],
)
def test_precision_rule(samples: list[float], target: float, precise: bool) -> None:
    assert is_precise(samples, target) is precise


_P = TimingPolicy(max_runs=50, min_runs=10, budget_s=2.0, target_rel_ci=0.05)
_FLAT, _WIDE = [1.0] * 60, list(np.random.default_rng(1).uniform(0.5, 1.5, 60))


@pytest.mark.parametrize(
    ("samples", "elapsed_s", "policy", "expected"),
    [
        (_FLAT[:9], 0.1, _P, None),  # below the floor: never stops, even if precise
        (_FLAT[:9], 5.0, _P, None),  # below the floor: not even when the budget is spent
        (_FLAT[:10], 0.1, _P, "precision"),
        (_WIDE[:20], 0.1, _P, None),  # not precise, budget left: go on
        (_WIDE[:20], 2.0, _P, "budget"),  # time budget spent
        (_WIDE[:50], 0.1, _P, "budget"),  # max_runs spent
        (_FLAT[:50], 2.0, _P, "precision"),  # both: precision is what it reached
        (_FLAT[:20], 0.1, TimingPolicy(max_runs=50, min_runs=10, target_rel_ci=None), None),
        (_FLAT[:50], 0.1, TimingPolicy(max_runs=50, min_runs=10, target_rel_ci=None), "budget"),
    ],
)
def test_stop_rule(
    samples: list[float], elapsed_s: float, policy: TimingPolicy, expected: str | None
) -> None:
    assert stop_reason(samples, elapsed_s, policy) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_runs": 0}, "max_runs must be at least 1"),
        ({"max_runs": 5, "min_runs": 10}, r"min_runs must be between 1 and max_runs \(5\)"),
        ({"budget_s": 0}, "budget_s must be greater than 0"),
        ({"target_rel_ci": 5}, r"target_rel_ci must be between 0 and 1 \(0.05 is ±5%\)"),
        ({"warmup_runs": -1}, "warmup_runs must be 0 or more"),
    ],
)
def test_bad_policy(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TimingPolicy(**kwargs)


def test_repetitions_are_the_max_and_lower_the_floor() -> None:
    assert TimingPolicy().with_max_runs(200) == TimingPolicy(max_runs=200, min_runs=10)
    assert TimingPolicy().with_max_runs(3) == TimingPolicy(max_runs=3, min_runs=3)


def test_summary_of_known_samples() -> None:
    result = summarize_timing(list(range(1, 101)), stopped_by="budget")
    assert (result.n, result.p50_ms, result.mean_ms, result.max_ms) == (100, 50.5, 50.5, 100.0)
    assert result.p95_ms == pytest.approx(95.05) and result.p99_ms == pytest.approx(99.01)
    assert (result.p50_ci_low_ms, result.p50_ci_high_ms) == (40.0, 61.0)
    assert result.p50_ci_rel == pytest.approx(10.5 / 50.5)
    assert math.isnan(latency_summary([])["p50_ms"])
    with pytest.raises(ValueError, match="no samples to summarize"):
        summarize_timing([], stopped_by="budget")


# ---- on the real server -----------------------------------------------------------------------
@pytest.mark.db
@pytest.mark.parametrize(("prepare", "unprepared"), [(True, 0), (None, 5)])  # psycopg: threshold 5
def test_warm_up_leaves_every_measured_run_on_the_settled_plan(
    make_database, prepare: bool | None, unprepared: int
) -> None:
    dsn = make_database("timing")
    query = "SELECT count(*) FROM generate_series(1, %s)"
    policy = TimingPolicy(max_runs=40, min_runs=10, target_rel_ci=None, prepare=prepare)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.prepare_threshold == 5
        result = time_query(conn, query, [(1000,), (2000,)], policy=policy)
        custom, generic = conn.execute(
            "SELECT custom_plans, generic_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%%generate_series(1, $1)%%'"
        ).fetchone()
    assert result.warmup_runs == PLAN_CACHE_WARMUP + unprepared and result.n == 40
    assert result.stopped_by == "budget"  # no precision target: ran to max_runs
    # prepared after `unprepared` runs; then five custom plans during warm-up and the generic one
    # ever after, so not one measured execution was planned differently from the next
    assert custom + generic == result.warmup_runs - unprepared + result.n
    assert custom == PLAN_CACHE_WARMUP - 1 and generic >= result.n
    assert min(result.samples_ms) <= result.p50_ms <= max(result.samples_ms)
    assert result.p50_ci_low_ms <= result.p50_ms <= result.p50_ci_high_ms


@pytest.mark.db
def test_a_steady_query_stops_for_precision_a_noisy_one_for_its_budget(make_database) -> None:
    dsn = make_database("timing")
    with psycopg.connect(dsn, autocommit=True) as conn:
        steady = time_query(conn, "SELECT pg_sleep(0.02)", policy=TimingPolicy(max_runs=200))
        noisy = time_query(
            conn,
            "SELECT pg_sleep(random() * 0.01)",
            policy=TimingPolicy(max_runs=10_000, budget_s=0.3),
        )
    assert steady.stopped_by == "precision" and 10 <= steady.n < 200
    assert steady.p50_ci_rel <= 0.05 and 20 <= steady.p50_ms < 25
    # uniform 0-10 ms: the median needs thousands of samples for ±5%; 0.3 s gives ~60
    assert noisy.stopped_by == "budget" and noisy.p50_ci_rel > 0.05
    assert 0.3 <= noisy.elapsed_s < 0.5 and noisy.n < 10_000
