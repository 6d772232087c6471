"""The keys of notebook 06 (maintenance, and the incidents the monitors find: ``bench/incidents.py``)."""

from __future__ import annotations

from ibcbench.results.metrics.metric import TIMING, Metric, informational, lookup

TABLE: tuple[Metric, ...] = (
    informational("cron_jobs_scheduled", "jobs", "how many demo jobs were scheduled"),
    # 06 · incidents planted by the generator and what the monitors found (bench/incidents.py)
    informational("incidents_planted", "incidents", "set by the seed and the span"),
    *(
        informational(f"incidents_{kind}", "incidents", "set by the seed and the span")
        for kind in ("chain_halt", "relayer_outage", "congestion", "client_expiry")
    ),
    *(
        Metric(f"monitor_{m}_hits", "higher", "incidents", note=f"incidents the {m} monitor found")
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
        Metric(f"monitor_{m}_false_alarms", "lower", "alerts", note=f"{m} alerts about no incident")
        for m in ("health_score", "stuck_packets", "long_running_queries")
    ),
    informational("health_window_days", "days", "the health score's window: the data span"),
    informational("health_best", "points", "the healthiest chain's score"),
    informational("health_best_chain", "", "a chain id"),
    informational("health_worst", "points", "the least healthy chain's score"),
    informational("health_worst_chain", "", "a chain id"),
    Metric(
        "health_spread",
        "higher",
        "points",
        0.25,
        2.0,
        note="best minus worst health score: the score separates incident chains from the rest",
    ),
    informational("incident_chains", "chains", "chains that had an incident"),
    informational("incident_chain_ranks", "", "their ranks from the bottom (a list)"),
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
    informational("leaf_density_before", "%", "the bloated index, bloated on purpose"),
    Metric("leaf_density_after", "higher", "%", 0.1, 1.0, note="leaf density after REINDEX"),
    informational("index_bytes_before", "bytes", "the bloated index, bloated on purpose"),
    Metric("index_bytes_after", "lower", "bytes", 0.1, 8192.0, note="index size after REINDEX"),
    lookup("lookup_p50_ms_before", "an index lookup on the bloated index"),
    lookup("lookup_p50_ms_after", "the same lookup after REINDEX"),
    Metric(
        "bloat_detected",
        "higher",
        "",
        note="True expected: the monitoring query finds the planted bloat",
    ),
    informational("health_scores", "rows", "rows of the network health table"),
)
