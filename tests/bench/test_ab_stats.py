"""The A/B's statistics without a database: the t quantile, the log-ratio interval's coverage under
autocorrelated noise, its power against a 1.3x change, the MDE and the verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ibcbench.bench.ab.rounds import RoundsPolicy
from ibcbench.bench.ab.stats import (
    MDE_POWER,
    PRACTICAL_RATIO,
    RatioInterval,
    per_query_confidence,
    ratio_interval,
    t_quantile,
    verdict,
)

#: queries of the default workload: the family the default intervals are made for
WORKLOAD_QUERIES = 11


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.706),
        (0.975, 2, 4.303),
        (0.975, 3, 3.182),
        (0.975, 4, 2.776),
        (0.975, 9, 2.262),
        (0.975, 39, 2.023),
        (0.8, 3, 0.978),
        (0.8, 39, 0.851),
        (0.99773, 39, 3.02),  # 1 - 0.05 / 11 / 2, the default family's per-query quantile
    ],
)
def test_t_quantile_matches_the_table(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=0.01)


def simulate_round_ratios(
    rng: np.random.Generator,
    *,
    rounds: int,
    repetitions: int = 5,
    true_ratio: float = 1.0,
    round_phi: float = 0.8,
    round_sd: float = 0.3,
    step_phi: float = 0.9,
    step_sd: float = 0.05,
    side_sd: float = 0.25,
) -> np.ndarray:
    """Per-round ratios as :func:`~ibcbench.bench.ab.rounds.run_rounds` makes them, on a machine
    whose load drifts: an AR(1) drift per round hitting both sides (``round_*``), an AR(1) drift
    from one execution to the next (``step_*``: it does not cancel fully), and noise of each
    execution (``side_sd``, with 5% spikes of x2.7); ABBA alternation, first side random."""
    ratios = np.empty(rounds)
    level = step = 0.0
    for r in range(rounds):
        level = round_phi * level + rng.normal(0, round_sd)
        first_head = rng.random() < 0.5
        logs: dict[bool, list[float]] = {True: [], False: []}
        for j in range(repetitions):
            pair = (first_head, not first_head) if j % 2 == 0 else (not first_head, first_head)
            for is_head in pair:
                step = step_phi * step + rng.normal(0, step_sd)
                spike = 1.0 if rng.random() < 0.05 else 0.0
                noise = rng.normal(0, side_sd) + spike
                logs[is_head].append(
                    level + step + noise + (math.log(true_ratio) if is_head else 0.0)
                )
        ratios[r] = math.exp(np.median(logs[True]) - np.median(logs[False]))
    return ratios


def test_the_interval_covers_1_in_aa_pairs_with_autocorrelated_noise() -> None:
    rng = np.random.default_rng(20260101)
    trials = 200
    covered = sum(
        ratio_interval(simulate_round_ratios(rng, rounds=RoundsPolicy().min_rounds * 2)).holds_one
        for _ in range(trials)
    )
    assert covered / trials >= 0.93, f"covered 1 in {covered} of {trials} A/A pairs"


def test_a_13x_change_is_flagged_in_most_trials_at_the_default_rounds() -> None:
    rng = np.random.default_rng(7)
    policy = RoundsPolicy()
    confidence = per_query_confidence(policy.confidence, WORKLOAD_QUERIES)
    trials = 100
    flagged = sum(
        verdict(
            ratio_interval(
                simulate_round_ratios(
                    rng, rounds=policy.max_rounds, repetitions=policy.repetitions, true_ratio=1.3
                ),
                confidence,
            )
        )
        == "regression"
        for _ in range(trials)
    )
    assert flagged / trials >= 0.8, f"flagged {flagged} of {trials}"


def test_aa_runs_of_the_whole_workload_rarely_flag_any_query() -> None:
    """The family confidence: an A/A run of 11 queries flags one in at most ~5% of runs."""
    rng = np.random.default_rng(11)
    confidence = per_query_confidence(0.95, WORKLOAD_QUERIES)
    runs = 100
    flagged = sum(
        any(
            verdict(ratio_interval(simulate_round_ratios(rng, rounds=40), confidence))
            != "no difference"
            for _ in range(WORKLOAD_QUERIES)
        )
        for _ in range(runs)
    )
    assert flagged <= 10, f"{flagged} of {runs} A/A runs flagged a query"


def test_mde_is_the_80_percent_power_effect_from_the_half_width() -> None:
    ratios = [1.02, 0.97, 1.05, 1.01, 0.99, 1.04, 0.96, 1.03]
    interval = ratio_interval(ratios)
    logs = np.log(ratios)
    se = logs.std(ddof=1) / math.sqrt(len(logs))
    t_alpha = t_quantile(0.975, len(logs) - 1)
    assert interval.half_width_log == pytest.approx(t_alpha * se)
    assert interval.mde == pytest.approx(
        math.exp(interval.half_width_log * (t_alpha + t_quantile(MDE_POWER, 7)) / t_alpha)
    )
    assert interval.ratio == pytest.approx(math.exp(logs.mean()))
    assert interval.low == pytest.approx(interval.ratio / math.exp(interval.half_width_log))


def test_a_true_change_at_the_mde_is_flagged_about_80_percent_of_the_time() -> None:
    rng = np.random.default_rng(3)
    sd, n, trials = 0.1, 20, 400
    se = sd / math.sqrt(n)
    mde = math.exp((t_quantile(0.975, n - 1) + t_quantile(MDE_POWER, n - 1)) * se)
    flagged = sum(
        ratio_interval(np.exp(rng.normal(math.log(mde), sd, n))).low > 1 for _ in range(trials)
    )
    assert 0.72 <= flagged / trials <= 0.88


def _interval(ratio: float, low: float, high: float) -> RatioInterval:
    return RatioInterval(10, ratio, low, high, math.log(high / ratio), 1.1, 0.95)


@pytest.mark.parametrize(
    ("ratio", "low", "high", "expected"),
    [
        (1.42, 1.31, 1.55, "regression"),
        (0.7, 0.6, 0.8, "improvement"),
        (1.1, 0.95, 1.27, "no difference"),  # the interval holds 1
        (1.03, 1.01, 1.05, "no difference"),  # real, but below the practical x1.05
        (0.98, 0.97, 0.99, "no difference"),
        (PRACTICAL_RATIO, 1.01, 1.09, "regression"),
    ],
)
def test_verdicts(ratio: float, low: float, high: float, expected: str) -> None:
    assert verdict(_interval(ratio, low, high)) == expected


@pytest.mark.parametrize(
    ("ratios", "message"),
    [([1.0], "at least 2 rounds"), ([1.0, 0.0], "greater than 0"), ([1.0, math.nan], "finite")],
)
def test_bad_ratios_are_refused(ratios: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ratio_interval(ratios)


def test_per_query_confidence_is_bonferroni() -> None:
    assert per_query_confidence(0.95, 1) == pytest.approx(0.95)
    assert per_query_confidence(0.95, 10) == pytest.approx(0.995)
