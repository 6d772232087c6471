"""The keys of notebook 04 (query plans)."""

from __future__ import annotations

from ibcbench.results.metrics.metric import ESTIMATE, RATIO, Metric, informational

TABLE: tuple[Metric, ...] = (
    informational("queries", "queries", "how many queries were compared"),
    Metric(
        "faster",
        "higher",
        "queries",
        0.0,
        1.0,
        note="queries faster with config b; one flips with noise",
    ),
    Metric(
        "slower",
        "lower",
        "queries",
        0.0,
        1.0,
        note="queries slower with config b; one flips with noise",
    ),
    informational(
        "plans_changed", "plans", "how many plans config b changed: neither direction is better"
    ),
    informational("biggest_change_query", "", "the query whose plan changed most (a name)"),
    Metric("biggest_speedup", "higher", "x", RATIO, note="that query's p50 a / b"),
    Metric(
        "worst_q_error",
        "lower",
        "x",
        ESTIMATE,
        note="the planner's worst row estimate (q-error)",
    ),
    informational(
        "random_page_cost_plans_changed",
        "plans",
        "how many plans a setting changed: neither direction is better",
    ),
)
