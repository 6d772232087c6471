"""The keys of notebook 01 (generate and load) and of ``ibcbench bench generate``."""

from __future__ import annotations

from ibcbench.results.metrics.metric import GENERATED_DATA, TIMING, Metric, informational

TABLE: tuple[Metric, ...] = (
    informational("dataset", "", "the dataset's database name"),
    informational(
        "created", "", "whether this run generated the dataset or reused an existing one"
    ),
    informational(
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
    informational("rows_packet_flow", "rows", GENERATED_DATA),
    informational("rows_clearing_operations", "rows", GENERATED_DATA),
    informational("rows_network_stats", "rows", GENERATED_DATA),
    informational("rows_channel_performance", "rows", GENERATED_DATA),
    informational("rows_relayer_performance", "rows", GENERATED_DATA),
    informational("chain_pairs", "pairs", GENERATED_DATA),
    informational("chains", "chains", GENERATED_DATA),
    informational("stuck_pct", "%", GENERATED_DATA),
    informational("timeout_pct", "%", GENERATED_DATA),
    informational("acknowledged_pct", "%", GENERATED_DATA),
    informational(
        "clear_time_p50_s",
        "s",
        "simulated clear times of the generated packets, not the server's speed",
    ),
    informational(
        "clear_time_p99_s",
        "s",
        "simulated clear times of the generated packets, not the server's speed",
    ),
    informational("relayers_on_busiest_channel", "relayers", GENERATED_DATA),
    informational("redundant_relay_pct", "%", GENERATED_DATA),
    informational("generate_scale", "", "the preset generated"),
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
)
