"""The keys of the fault suite (``ibcbench/faults/``, notebook 08): counts, so any change counts."""

from __future__ import annotations

from ibcbench.results.metrics.metric import Metric

TABLE: tuple[Metric, ...] = (
    Metric("faults_injected", "none", "faults", note="faults the suite injected (its scale's set)"),
    Metric("faults_survived", "higher", "faults", note="injected faults the kit came through"),
    Metric("faults_rows_lost", "lower", "rows", note="rows lost or doubled against a clean load"),
    Metric(
        "faults_bad_inputs_rejected",
        "higher",
        "inputs",
        note="bad inputs refused in one line before any work",
    ),
    Metric(
        "faults_longest_recovery_s",
        "lower",
        "s",
        1.0,
        5.0,
        note="the slowest recovery (a rerun, a reconnect): a restart's time varies a lot",
    ),
)
