"""Recorded metrics: which way is better, in what unit, and how much change is noise.

Every key a notebook records (:func:`ibcbench.results.recorded.record`) is listed in :data:`METRICS`
with its better direction (``higher``, ``lower``, or ``none`` for informational values such as row
counts of the generated data), its unit, and a noise threshold: a change counts only when it is
beyond both the relative threshold, a factor either way (x1.25: above x1.25 or below x0.8, so a
throughput halving and a latency doubling weigh the same), and the absolute one (in the unit).
A baseline of 0 has no relative change, so only the absolute threshold applies there: ``errors``
going from 0 to 4 is a regression. A key missing from the table is reported as "not compared (no
direction known)", never guessed from its name.

The thresholds of timings are wide because they were measured so: on the 2-core machine the kit is
built on, shared with other jobs (load average 6 to 8), five identical tiny-scale runs of notebook
02 moved an index lookup's p50 up to x1.7, a sequential scan's p50 up to x4.4, their ratio (the
speed-up) up to x5.0 and a 5,000-row insert rate up to x4.8 (``docs/report-check.md``). A dropped
index moves its query's p50 by x40 and more, far beyond them. On a quiet runner, tighten them.

:func:`compare_recorded` compares two runs' recorded values, notebook by notebook.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ibcbench.errors import ConfigError

Better = Literal["higher", "lower", "none"]
Verdict = Literal["regression", "improvement", "same", "not compared"]


@dataclass(frozen=True)
class Metric:
    """One recorded key: its better direction, unit and noise threshold.

    ``noise_rel`` sets a factor either way (0.25: from x0.8 to x1.25 is noise; 1.0: within a halving
    or a doubling); ``noise_abs`` is in the metric's unit (0: any change of a count counts).
    """

    key: str
    better: Better
    unit: str = ""
    noise_rel: float = 0.0
    noise_abs: float = 0.0
    note: str = ""

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower", "none"):
            raise ConfigError(
                f"metric {self.key!r}: better must be 'higher', 'lower' or 'none', not {self.better!r}"
            )
        if self.noise_rel < 0 or self.noise_abs < 0:
            raise ConfigError(f"metric {self.key!r}: noise thresholds must be >= 0")

    @property
    def noise_text(self) -> str:
        """The threshold as people read it: ``x1.25``, ``x2.5 and 0.05 ms``, ``0``."""
        parts = []
        if self.noise_rel:
            parts.append(f"x{1 + self.noise_rel:g}")
        if self.noise_abs:
            parts.append(f"{_short(self.noise_abs)}{_unit(self.unit)}")
        return " and ".join(parts) or "0"


#: relative thresholds by kind of figure (see the module's docstring for where they come from)
LOOKUP = 1.5  # a round-trip-bound p50 (an index lookup): x2.5
TIMING = 5.0  # a CPU-bound timing or rate (a scan, a refresh, a short insert): x6
RATIO = 5.0  # a ratio of two timings taken at different moments (a speed-up): x6
THROUGHPUT = 1.0  # a throughput over a sweep, or a ratio of two: x2
ESTIMATE = 1.0  # a planner estimate: x2


def _lookup(key: str, note: str) -> Metric:
    return Metric(key, "lower", "ms", LOOKUP, 0.05, note)


def _data(key: str, unit: str, note: str) -> Metric:
    return Metric(key, "none", unit, note=note)


_DATA = "a property of the generated data, set by scale and seed: a change means different data"

#: every key the notebooks record, by notebook (01..07)
METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        # 01 · generate and load
        _data("dataset", "", "the dataset's database name"),
        _data("created", "", "whether this run generated the dataset or reused an existing one"),
        _data(
            "dataset_seconds",
            "s",
            "generation and load when created, a lookup when reused: not comparable",
        ),
        Metric(
            "load_rows_per_s",
            "higher",
            "rows/s",
            TIMING,
            note="binary COPY throughput (only when created)",
        ),
        _data("rows_packet_flow", "rows", _DATA),
        _data("rows_clearing_operations", "rows", _DATA),
        _data("rows_network_stats", "rows", _DATA),
        _data("rows_channel_performance", "rows", _DATA),
        _data("rows_relayer_performance", "rows", _DATA),
        _data("chain_pairs", "pairs", _DATA),
        _data("chains", "chains", _DATA),
        _data("stuck_pct", "%", _DATA),
        _data("timeout_pct", "%", _DATA),
        _data("acknowledged_pct", "%", _DATA),
        _data(
            "clear_time_p50_s",
            "s",
            "simulated clear times of the generated packets, not the server's speed",
        ),
        _data(
            "clear_time_p99_s",
            "s",
            "simulated clear times of the generated packets, not the server's speed",
        ),
        _data("relayers_on_busiest_channel", "relayers", _DATA),
        _data("redundant_relay_pct", "%", _DATA),
        # 02 · index strategies
        Metric(
            "wallet_history_p50_ms_none",
            "lower",
            "ms",
            TIMING,
            0.05,
            note="wallet history p50 without secondary indexes: a scan",
        ),
        _lookup("wallet_history_p50_ms_service", "wallet history p50 with the service's indexes"),
        Metric(
            "wallet_history_speedup",
            "higher",
            "x",
            RATIO,
            note="p50 without indexes / with the service's",
        ),
        Metric(
            "packet_lookup_speedup",
            "higher",
            "x",
            RATIO,
            note="p50 without indexes / with the service's",
        ),
        _data("winners", "", "the fastest strategy per query (names)"),
        Metric(
            "ingest_rows_per_s", "higher", "rows/s", TIMING, note="bulk insert rate per strategy"
        ),
        # ibcbench bench generate (the generator alone)
        _data("generate_scale", "", "the preset generated"),
        Metric(
            "generate_seconds_median",
            "lower",
            "s",
            TIMING,
            0.5,
            note="wall time of `ibcbench generate`",
        ),
        Metric(
            "generate_rows_per_s_median",
            "higher",
            "rows/s",
            TIMING,
            note="rows generated and written per second",
        ),
        Metric(
            "generate_peak_rss_mb",
            "lower",
            "MB",
            0.25,
            20.0,
            note="peak resident memory of the generate process",
        ),
        # 03 · pool settings
        _data(
            "knee_max_size",
            "connections",
            "where throughput stops growing: neither direction is better",
        ),
        Metric("best_qps", "higher", "queries/s", THROUGHPUT, note="the sweep's best throughput"),
        Metric(
            "errors", "lower", "errors", note="failed queries in the sweep: any increase counts"
        ),
        Metric(
            "client_bound_points",
            "lower",
            "points",
            0.0,
            1.0,
            note="sweep points limited by the Python client, whose figures are the client's; one point flips with noise",
        ),
        Metric(
            "prepared_gain", "higher", "x", THROUGHPUT, note="throughput prepared / not prepared"
        ),
        Metric(
            "max_wait_ms_per_request",
            "lower",
            "ms",
            TIMING,
            1.0,
            note="longest mean pool wait of a sweep point",
        ),
        _data(
            "capacity_rate_qps",
            "queries/s",
            "the arrival rate the wait was measured at (set from the throughput)",
        ),
        _data(
            "capacity_knee_pgbench",
            "connections",
            "where more connections stop adding throughput: neither way is better",
        ),
        _data("capacity_knee_python", "connections", "the same through psycopg_pool"),
        Metric(
            "capacity_wait_p95_ms",
            "lower",
            "ms",
            TIMING,
            1.0,
            note="arrival to a free connection at the rate, p95, per engine and pool size",
        ),
        # 04 · query plans
        _data("queries", "queries", "how many queries were compared"),
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
        _data(
            "plans_changed", "plans", "how many plans config b changed: neither direction is better"
        ),
        _data("biggest_change_query", "", "the query whose plan changed most (a name)"),
        Metric("biggest_speedup", "higher", "x", RATIO, note="that query's p50 a / b"),
        Metric(
            "worst_q_error",
            "lower",
            "x",
            ESTIMATE,
            note="the planner's worst row estimate (q-error)",
        ),
        _data(
            "random_page_cost_plans_changed",
            "plans",
            "how many plans a setting changed: neither direction is better",
        ),
        # 05 · TimescaleDB
        _data("compression", "", "whether the server's edition has compression (text)"),
        _data("caggs_available", "", "whether the server's edition has continuous aggregates"),
        _data("most_chunks_layout", "", "the chunk interval with the most chunks (a name)"),
        _data("chunks_total", "chunks", "set by the data and the chunk interval"),
        Metric(
            "chunks_scanned_bounded",
            "lower",
            "chunks",
            note="a time-bounded lookup: more chunks means less exclusion",
        ),
        _data(
            "chunks_scanned_unbounded", "chunks", "an unbounded lookup scans every chunk by design"
        ),
        Metric(
            "point_lookup_ratio_many_chunks_vs_plain",
            "lower",
            "x",
            THROUGHPUT,
            note="point lookup latency, most chunks / plain table",
        ),
        Metric(
            "rollup_matches_raw",
            "higher",
            "",
            note="True expected: the rollup equals the raw GROUP BY",
        ),
        Metric("refresh_ms", "lower", "ms", TIMING, 5.0, note="rollup refresh time per method"),
        _data(
            "cagg_stale_rows_materialized_only",
            "rows",
            "new packets a materialized-only answer misses: by design",
        ),
        Metric(
            "cagg_stale_rows_real_time",
            "lower",
            "rows",
            note="0 expected: real-time aggregation adds the new rows",
        ),
        Metric(
            "cagg_hierarchical_matches_hourly",
            "higher",
            "",
            note="True expected: the daily aggregate sums the hourly",
        ),
        _data("cagg_policy_runs", "runs", "runs of the refresh policy job seen"),
        Metric(
            "cagg_policy_failures", "lower", "runs", note="failed runs of the refresh policy job"
        ),
        _data("cagg_policy_status", "", "the policy job's last run status (text)"),
        Metric("retention_ms", "lower", "ms", TIMING, 5.0, note="retention time per method"),
        _data("columnstore", "", "'measured', or why the columnstore was not (the edition)"),
        _data("columnstore_setting", "", "the recommended segmentby setting (a name)"),
        Metric(
            "compression_ratio",
            "higher",
            "x",
            0.1,
            0.05,
            note="bytes before / after, compressed chunks, per setting",
        ),
        Metric(
            "compression_ratio_recommended",
            "higher",
            "x",
            0.1,
            0.05,
            note="that ratio for the recommended setting",
        ),
        Metric(
            "analytics_speedup",
            "higher",
            "x",
            RATIO,
            note="rowstore p50 / columnstore p50 per analytics query",
        ),
        Metric(
            "point_lookup_slowdown",
            "lower",
            "x",
            RATIO,
            note="columnstore p50 / rowstore p50 per point lookup",
        ),
        Metric(
            "ingest_rows_per_s_rowstore",
            "higher",
            "rows/s",
            TIMING,
            note="INSERT of a new hour, rowstore copy",
        ),
        Metric(
            "ingest_rows_per_s_columnstore",
            "higher",
            "rows/s",
            TIMING,
            note="INSERT of a new hour, older chunks in the columnstore",
        ),
        Metric(
            "backfill_rows_per_s_compressed_chunk",
            "higher",
            "rows/s",
            TIMING,
            note="INSERT into a compressed chunk's time range",
        ),
        _data("columnstore_policy_runs", "runs", "runs of the columnstore policy job seen"),
        Metric(
            "columnstore_policy_failures",
            "lower",
            "runs",
            note="failed runs of the columnstore policy job",
        ),
        _data("columnstore_recommendation", "", "the recommendation, in words"),
        Metric(
            "retention_wal_bytes",
            "lower",
            "bytes",
            1.0,
            8192.0,
            note="WAL written by retention per method; full-page images after a checkpoint moved it x1.5",
        ),
        # 06 · maintenance
        _data("cron_jobs_scheduled", "jobs", "how many demo jobs were scheduled"),
        # 06 · incidents planted by the generator and what the monitors found (bench/incidents.py)
        _data("incidents_planted", "incidents", "set by the seed and the span"),
        *(
            _data(f"incidents_{kind}", "incidents", "set by the seed and the span")
            for kind in ("chain_halt", "relayer_outage", "congestion", "client_expiry")
        ),
        *(
            Metric(
                f"monitor_{m}_hits", "higher", "incidents", note=f"incidents the {m} monitor found"
            )
            for m in ("health_score", "stuck_packets", "long_running_queries")
        ),
        *(
            Metric(
                f"monitor_{m}_misses",
                "lower",
                "incidents",
                note=f"incidents the {m} monitor missed",
            )
            for m in ("health_score", "stuck_packets", "long_running_queries")
        ),
        *(
            Metric(
                f"monitor_{m}_false_alarms", "lower", "alerts", note=f"{m} alerts about no incident"
            )
            for m in ("health_score", "stuck_packets", "long_running_queries")
        ),
        _data("health_best", "points", "the healthiest chain's score"),
        _data("health_best_chain", "", "a chain id"),
        _data("health_worst", "points", "the least healthy chain's score"),
        _data("health_worst_chain", "", "a chain id"),
        Metric(
            "health_spread",
            "higher",
            "points",
            0.25,
            2.0,
            note="best minus worst health score: the score separates incident chains from the rest",
        ),
        _data("incident_chains", "chains", "chains that had an incident"),
        _data("incident_chain_ranks", "", "their ranks from the bottom (a list)"),
        Metric(
            "incident_chains_rank_lowest",
            "higher",
            "",
            note="True expected: incident chains score lowest",
        ),
        Metric(
            "cron_jobs_seen",
            "higher",
            "runs",
            note="succeeded pg_cron runs: fewer means a job failed or never ran",
        ),
        Metric("cron_job_max_ms", "lower", "ms", TIMING, 50.0, note="the slowest pg_cron run"),
        _data("leaf_density_before", "%", "the bloated index, bloated on purpose"),
        Metric("leaf_density_after", "higher", "%", 0.1, 1.0, note="leaf density after REINDEX"),
        # 08 · the fault suite (ibcbench/faults/): counts, so any change counts
        Metric(
            "faults_injected", "none", "faults", note="faults the suite injected (its scale's set)"
        ),
        Metric("faults_survived", "higher", "faults", note="injected faults the kit came through"),
        Metric(
            "faults_rows_lost", "lower", "rows", note="rows lost or doubled against a clean load"
        ),
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
        _data("index_bytes_before", "bytes", "the bloated index, bloated on purpose"),
        Metric("index_bytes_after", "lower", "bytes", 0.1, 8192.0, note="index size after REINDEX"),
        _lookup("lookup_p50_ms_before", "an index lookup on the bloated index"),
        _lookup("lookup_p50_ms_after", "the same lookup after REINDEX"),
        Metric(
            "bloat_detected",
            "higher",
            "",
            note="True expected: the monitoring query finds the planted bloat",
        ),
        _data("health_scores", "rows", "rows of the network health table"),
        # 07 · replicas and PgBouncer (bench/replicas.py, bench/pgbouncer.py)
        Metric(
            "lag_peak_bytes",
            "lower",
            "bytes",
            TIMING,
            1e6,
            note="WAL the standby had not replayed, at worst",
        ),
        Metric(
            "lag_p95_bytes",
            "lower",
            "bytes",
            TIMING,
            1e6,
            note="WAL not replayed, 95th percentile of the samples",
        ),
        Metric(
            "lag_peak_s",
            "lower",
            "s",
            TIMING,
            0.1,
            note="replay_lag (pg_stat_replication) at worst during the load",
        ),
        Metric("lag_p95_s", "lower", "s", TIMING, 0.1, note="replay_lag, 95th percentile"),
        Metric(
            "staleness_peak_s",
            "none",
            "s",
            note="age of the newest commit the standby showed: the load's length",
        ),
        Metric(
            "lag_catch_up_s",
            "lower",
            "s",
            TIMING,
            0.1,
            note="from the load's commit until the standby replayed it",
        ),
        Metric(
            "lag_load_s", "lower", "s", TIMING, note="the load itself, while the standby streamed"
        ),
        _data("lag_samples", "samples", "how many lag samples were taken"),
        _data("lag_sample_interval_ms", "ms", "the median interval between lag samples"),
        *(
            Metric(
                f"analytics_{t}_{p}_ms",
                "lower",
                "ms",
                TIMING,
                0.05,
                note=f"the analytics mix on the {t}",
            )
            for t in ("primary", "standby")
            for p in ("p50", "p95")
        ),
        Metric(
            "analytics_standby_over_primary_p50",
            "none",
            "",
            note="standby p50 / primary p50 (1: the same)",
        ),
        Metric(
            "service_p95_ms_alone",
            "lower",
            "ms",
            TIMING,
            0.05,
            note="the service mix on the primary alone",
        ),
        Metric(
            "service_p95_ms_standby_busy",
            "lower",
            "ms",
            TIMING,
            0.05,
            note="the service mix while the standby runs the analytics (same machine: shared CPUs)",
        ),
        Metric("service_qps_alone", "higher", "queries/s", THROUGHPUT),
        Metric("service_qps_standby_busy", "higher", "queries/s", THROUGHPUT),
        Metric("analytics_errors", "lower", "errors", note="0 expected"),
        Metric(
            "cancelled_feedback_off",
            "none",
            "queries",
            note="standby queries cancelled by vacuum: expected > 0",
        ),
        Metric(
            "cancelled_feedback_on",
            "lower",
            "queries",
            note="cancelled with hot_standby_feedback: 0 expected",
        ),
        _data("standby_queries_feedback_off", "queries", "standby queries that completed"),
        _data("standby_queries_feedback_on", "queries", "standby queries that completed"),
        _data("dead_tuples_kept_feedback_off", "rows", "dead rows vacuum could not remove"),
        Metric(
            "dead_tuples_kept_feedback_on",
            "none",
            "rows",
            note="what feedback costs the primary: dead rows kept",
        ),
        _data("table_mb_feedback_off", "MB", "the demo table after the rounds"),
        Metric(
            "table_mb_feedback_on",
            "none",
            "MB",
            note="the demo table, dead rows kept for the standby",
        ),
        Metric(
            "restart_primary_errors",
            "lower",
            "errors",
            note="0 expected: the primary keeps serving",
        ),
        Metric("restart_primary_qps", "higher", "queries/s", THROUGHPUT),
        Metric(
            "restart_read_errors",
            "lower",
            "errors",
            1.0,
            2.0,
            note="reads on the standby as it went down",
        ),
        Metric(
            "restart_reads_fell_back",
            "none",
            "reads",
            note="routed reads sent to the primary meanwhile",
        ),
        Metric("restart_reads_on_standby", "none", "reads"),
        Metric("restart_s", "lower", "s", TIMING, 1.0, note="the standby's stop and start"),
        *(
            Metric(
                f"{path}_{n}c_qps", "higher", "queries/s", THROUGHPUT, note=f"{path}, {n} clients"
            )
            for path in (
                "direct_python",
                "direct_pgbench",
                "pgb_txn_pgbench",
                "pgb_session_pgbench",
                "pgb_txn_python",
                "pgb_session_python",
            )
            for n in (1, 25, 200)
        ),
        *(
            Metric(f"{path}_{n}c_p99_ms", "lower", "ms", TIMING, 1.0, note=f"{path}, {n} clients")
            for path in (
                "direct_python",
                "direct_pgbench",
                "pgb_txn_pgbench",
                "pgb_session_pgbench",
                "pgb_txn_python",
                "pgb_session_python",
            )
            for n in (1, 25, 200)
        ),
        Metric(
            "prepared_errors_threshold_5",
            "none",
            "errors",
            note="prepare_threshold=5 through transaction pooling",
        ),
        Metric(
            "prepared_errors_threshold_none",
            "lower",
            "errors",
            note="the fix, prepare_threshold=None: 0 expected",
        ),
    )
}


@dataclass(frozen=True)
class MetricDiff:
    """One recorded value of a notebook, this run against the baseline."""

    notebook: str
    key: str
    baseline: Any
    current: Any
    metric: Metric | None
    verdict: Verdict
    #: for compared values the change (``x2.76``, ``+4``); otherwise why it was not compared
    detail: str

    @property
    def compared(self) -> bool:
        return self.verdict != "not compared"

    @property
    def unit(self) -> str:
        return self.metric.unit if self.metric else ""

    def line(self) -> str:
        """One line: ``regression: 02 wallet_history_p50_ms_service 0.33 -> 0.91 ms (x2.76, noise 25%)``."""
        change = f"{_short(self.baseline)} -> {_short(self.current)}{_unit(self.unit)}"
        if not self.compared:
            return f"not compared: {self.notebook} {self.key} ({self.detail})"
        noise = self.metric.noise_text if self.metric else "0"
        return f"{self.verdict}: {self.notebook} {self.key} {change} ({self.detail}, noise {noise})"


def _unit(unit: str) -> str:
    if not unit:
        return ""
    return unit if unit in ("%", "x") else f" {unit}"


def _short(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _number(value: Any) -> float | None:
    """A comparable number (booleans as 0/1), or None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def compare_value(
    notebook: str, key: str, baseline: Any, current: Any, *, metric_key: str | None = None
) -> MetricDiff:
    """Compare one recorded value with its baseline by :data:`METRICS` (``metric_key`` for dict entries)."""
    metric = METRICS.get(metric_key or key)

    def diff(verdict: Verdict, detail: str) -> MetricDiff:
        return MetricDiff(notebook, key, baseline, current, metric, verdict, detail)

    if metric is None:
        return diff("not compared", "no direction known")
    if metric.better == "none":
        return diff(
            "not compared", f"informational: {metric.note}" if metric.note else "informational"
        )
    if baseline is None and current is None:
        return diff("not compared", "no value in either run")
    if baseline is None:
        return diff("not compared", "no value in the baseline")
    if current is None:
        return diff("not compared", "no value in this run")
    old, new = _number(baseline), _number(current)
    if old is None or new is None:
        return diff("not compared", "not a number")
    delta = new - old
    if isinstance(baseline, bool) or isinstance(current, bool):
        change = "changed" if delta else "unchanged"
    else:
        change = f"x{new / old:.3g}" if old else f"{delta:+.3g}"
    if old == 0 or new == 0 or (old < 0) != (new < 0):
        relative_beyond = True  # no finite factor: the absolute threshold decides
    else:
        factor = new / old
        relative_beyond = max(factor, 1 / factor) > 1 + metric.noise_rel
    beyond = abs(delta) > metric.noise_abs and relative_beyond
    if not beyond:
        return diff("same", change)
    worse = delta > 0 if metric.better == "lower" else delta < 0
    return diff("regression" if worse else "improvement", change)


def compare_recorded(
    baseline: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]]
) -> list[MetricDiff]:
    """Every value recorded in either run, notebook by notebook (``{"02": {key: value}}``).

    A dict of numbers under a key with a direction (``refresh_ms``) is compared entry by entry
    (``refresh_ms[aggregate]``); keys recorded in one run only are listed as not compared.
    """
    diffs: list[MetricDiff] = []
    for notebook in sorted(set(baseline) | set(current)):
        old_values, new_values = baseline.get(notebook), current.get(notebook)
        for key in _keys(old_values or {}, new_values or {}):
            if old_values is None:
                diffs.append(
                    _absent(notebook, key, None, new_values, "notebook not in the baseline")
                )
                continue
            if new_values is None:
                diffs.append(_absent(notebook, key, old_values, None, "notebook not in this run"))
                continue
            if key not in old_values:
                diffs.append(_absent(notebook, key, None, new_values, "only in this run"))
                continue
            if key not in new_values:
                diffs.append(_absent(notebook, key, old_values, None, "only in the baseline"))
                continue
            old, new = old_values[key], new_values[key]
            metric = METRICS.get(key)
            if (
                metric is not None
                and metric.better != "none"
                and (isinstance(old, Mapping) or isinstance(new, Mapping))
            ):
                diffs.extend(_compare_entries(notebook, key, old, new))
            else:
                diffs.append(compare_value(notebook, key, old, new))
    return diffs


def _keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> Iterable[str]:
    return list(a) + [k for k in b if k not in a]


def _absent(
    notebook: str,
    key: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    why: str,
) -> MetricDiff:
    return MetricDiff(
        notebook,
        key,
        (old or {}).get(key),
        (new or {}).get(key),
        METRICS.get(key),
        "not compared",
        why,
    )


def _compare_entries(notebook: str, key: str, old: Any, new: Any) -> list[MetricDiff]:
    old_map = old if isinstance(old, Mapping) else {}
    new_map = new if isinstance(new, Mapping) else {}
    out = []
    for entry in _keys(old_map, new_map):
        name = f"{key}[{entry}]"
        if entry not in old_map or entry not in new_map:
            where = "this run" if entry in new_map else "the baseline"
            out.append(
                MetricDiff(
                    notebook,
                    name,
                    old_map.get(entry),
                    new_map.get(entry),
                    METRICS[key],
                    "not compared",
                    f"only in {where}",
                )
            )
            continue
        out.append(compare_value(notebook, name, old_map[entry], new_map[entry], metric_key=key))
    return out
