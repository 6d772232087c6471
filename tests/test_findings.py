"""The report's findings: recorded values in, the sentences out (no database, no browser)."""

from __future__ import annotations

import pandas as pd
import pytest

from ibcbench.bench.poolsweep import Knee, PoolSweepResult
from ibcbench.suite.findings import (
    failure_finding,
    findings,
    health_card,
    health_finding,
    index_finding,
    key_label,
    pool_finding,
)

POOL = {
    "knee_max_size": 16,
    "knee_clients": 32,
    "capacity_knee_pgbench": 4,
    "capacity_knee_python": 4,
}
HEALTH = {
    "health_window_days": 14,
    "health_worst_chain": "injective-1",
    "health_worst": 52.05,
    "health_best_chain": "osmosis-1",
    "health_best": 97.5,
    "monitor_health_score_hits": 3,
    "monitor_health_score_misses": 1,
    "monitor_health_score_false_alarms": 0,
    "monitor_stuck_packets_hits": 2,
    "monitor_stuck_packets_misses": 0,
    "monitor_stuck_packets_false_alarms": 1,
}


def test_pool_sentence_states_one_knee_with_its_client_count() -> None:
    f = pool_finding(POOL)
    assert f is not None
    assert f.sentence == (
        "Through the service's client (psycopg_pool), throughput stops growing at max_size 16 at "
        "32 clients (smallest reaching 95% of the best throughput); the service runs max_size 25. "
        "The server's closed loop (as many clients as connections, a different question) stops "
        "growing at pgbench 4, python 4 connections."
    )


def test_sweep_knee_is_read_at_the_most_clients_and_says_so() -> None:
    rows = []
    for clients, best in ((8, 4), (32, 16)):
        for size in (1, 4, 16, 25):
            qps = 1000.0 if size >= best else 100.0 * size
            rows.append(
                {"prepared": True, "clients": clients, "max_size": size, "throughput_qps": qps}
            )
    result = PoolSweepResult(pd.DataFrame(rows))
    assert result.knee_point() == Knee(16, 32)
    assert result.knee_point(clients=8) == Knee(4, 8)
    assert result.knee_point().short() == "max_size 16 at 32 clients"


def test_health_sentence_names_its_window_and_the_monitors() -> None:
    alerts = pd.DataFrame(
        {"monitor": ["health_score", "health_score", "stuck_packets"], "chain_id": ["b", "a", "c"]}
    )
    f = health_finding(HEALTH, alerts)
    assert f is not None
    assert f.sentence == (
        "Network health (whole data span, 14 days): worst injective-1 (52.05), best osmosis-1 "
        "(97.5); graded below healthy: a, b. Planted trouble: health_score found 3 of 4 (0 false "
        "alarms); stuck_packets found 2 of 2 (1 false alarms)."
    )
    assert health_card(HEALTH) == "injective-1 · 52.05 (whole data span, 14 days)"


def test_index_sentence_has_the_interval_or_no_difference() -> None:
    latency = pd.DataFrame(
        {
            "query": ["wallet_history"] * 2 + ["packet_lookup"] * 2,
            "strategy": ["none", "service"] * 2,
            "p50_ms": [10.0, 1.0, 1.0, 0.9],
            "p50_ci_low_ms": [9.0, 0.9, 0.8, 0.8],
            "p50_ci_high_ms": [11.0, 1.1, 1.2, 1.0],
        }
    )
    values = {
        "winners": {"wallet_history": "service", "packet_lookup": "service"},
        "ingest_rows_per_s": {"none": 20000.0, "service": 10000.0},
    }
    f = index_finding(values, latency)
    assert f is not None
    assert f.sentence == (
        "Fastest strategy per query: wallet_history: service x10 faster than no index (95% "
        "interval x8.18–x12.22); packet_lookup: service x1.11 faster than no index (no "
        "difference: 95% interval x0.8–x1.5). On ingest, against 20,000 rows/s without indexes: "
        "service 10,000 rows/s (x0.5)."
    )


@pytest.mark.parametrize(
    ("values", "sentence"),
    [
        ({}, "nothing failed."),
        (
            {
                "cagg_policy_failures": 1,
                "cagg_policy_runs": 1,
                "cagg_policy_error": "out of memory",
            },
            "the TimescaleDB continuous-aggregate refresh policy job failed 1 of 1 run(s): "
            "out of memory.",
        ),
        (
            {"columnstore_policy_failures": 2, "columnstore_policy_runs": 3},
            "the TimescaleDB columnstore policy job failed 2 of 3 run(s): job_errors holds no "
            "message for it.",
        ),
    ],
)
def test_a_job_failure_names_its_cause(values: dict, sentence: str) -> None:
    assert failure_finding({"05": values}, []).sentence == sentence


def test_a_failed_notebook_is_named_with_its_error() -> None:
    notebooks = [{"notebook": "03_pool_settings.ipynb", "ok": False, "error": "TimeoutError: x"}]
    assert failure_finding({}, notebooks).sentence == (
        "notebook 03_pool_settings.ipynb failed: TimeoutError: x."
    )


def test_only_questions_with_results_get_a_sentence() -> None:
    got = findings({"03": POOL}, {}, [])
    assert [f.question for f in got] == [
        "Which pool size for the service's client, and why?",
        "What failed, and why?",
    ]


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("worst_q_error", "worst q error (x)"),
        ("knee_max_size", "knee max size (connections)"),
        ("biggest_change_query", "biggest change query"),
        ("no_such_key", "no such key"),
    ],
)
def test_key_labels_carry_units(key: str, label: str) -> None:
    from ibcbench.metrics import all_metrics

    assert key_label(key, all_metrics()) == label
