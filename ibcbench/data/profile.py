"""The loaded data's profile: what notebook 01 shows after generating and loading.

Every figure is computed by the database from the loaded tables (not from the generator's memory),
so it also profiles data someone else loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ibcbench.db import read_frames
from ibcbench.results.metrics.metric import GENERATED_DATA, Metric, informational

_QUERIES: dict[str, str] = {
    "chain_pairs": """
        SELECT source_chain, destination_chain, count(*) AS packets
        FROM packet_flow GROUP BY 1, 2 ORDER BY packets DESC
    """,
    "status_mix": """
        SELECT status, count(*) AS packets, round(100.0 * count(*) / sum(count(*)) OVER (), 3) AS pct
        FROM packet_flow GROUP BY 1 ORDER BY packets DESC
    """,
    "clear_time_quantiles": """
        SELECT q, percentile_cont(q) WITHIN GROUP (ORDER BY clear_time_seconds) AS seconds
        FROM packet_flow, unnest(ARRAY[0.5, 0.9, 0.95, 0.99, 0.999]) AS q
        WHERE clear_time_seconds IS NOT NULL GROUP BY q ORDER BY q
    """,
    "clear_time_sample": """
        SELECT clear_time_seconds FROM packet_flow
        WHERE clear_time_seconds IS NOT NULL
          AND id % greatest(1, (SELECT count(*) FROM packet_flow) / 50000) = 0
    """,
    "stuck": """
        SELECT source_chain, source_channel, count(*) AS stuck_packets,
               min(created_at) AS oldest, max(created_at) AS newest
        FROM packet_flow WHERE status = 'stuck' GROUP BY 1, 2 ORDER BY stuck_packets DESC
    """,
    "relayer_share": """
        WITH per AS (
            SELECT source_chain, source_channel, relayer, count(*) AS packets
            FROM packet_flow WHERE relayer IS NOT NULL GROUP BY 1, 2, 3
        )
        SELECT source_chain, source_channel, relayer, packets,
               round(100.0 * packets / sum(packets) OVER (PARTITION BY source_chain, source_channel), 2)
                   AS share_pct,
               count(*) OVER (PARTITION BY source_chain, source_channel) AS relayers_on_channel,
               sum(packets) OVER (PARTITION BY source_chain, source_channel) AS channel_packets
        FROM per ORDER BY channel_packets DESC, packets DESC
    """,
    "hourly_volume": """
        SELECT date_trunc('hour', created_at) AS hour, count(*) AS packets
        FROM packet_flow GROUP BY 1 ORDER BY 1
    """,
    "table_rows": """
        SELECT 'packet_flow' AS table_name, count(*) AS rows FROM packet_flow
        UNION ALL SELECT 'clearing_operations', count(*) FROM clearing_operations
        UNION ALL SELECT 'network_stats', count(*) FROM network_stats
        UNION ALL SELECT 'channel_performance', count(*) FROM channel_performance
        UNION ALL SELECT 'relayer_performance', count(*) FROM relayer_performance
    """,
    "frontrun": """
        SELECT sum(packets_relayed) AS packets_relayed, sum(frontrun_wins) AS wins,
               sum(frontrun_losses) AS losses,
               round(100.0 * sum(frontrun_losses) / nullif(sum(packets_relayed + frontrun_losses), 0), 2)
                   AS redundant_pct
        FROM relayer_performance
    """,
}


@dataclass(frozen=True)
class DatasetProfile:
    """The profile's tables, one DataFrame each."""

    frames: dict[str, pd.DataFrame]

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.frames[name]

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
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
    )

    def key_numbers(self) -> dict[str, Any]:
        """What notebook 01 records about the data (the same as :meth:`summary`)."""
        return self.summary()

    def save(self, run_dir: str | Path | None) -> Path | None:
        """Write the profile figure as ``<run_dir>/figures/01_dataset_profile.png`` (None: no-op).

        Written here, not through ``results.recorded.save_figure``: ``data/`` sits below ``results/``.
        """
        if run_dir is None:
            return None
        import matplotlib.pyplot as plt

        folder = Path(run_dir) / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "01_dataset_profile.png"
        fig = plot_profile(self)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return path

    def summary(self) -> dict[str, Any]:
        """Key numbers for ``record``."""
        rows = dict(
            zip(
                self.frames["table_rows"].table_name, self.frames["table_rows"]["rows"], strict=True
            )
        )
        status = dict(
            zip(self.frames["status_mix"].status, self.frames["status_mix"].pct, strict=True)
        )
        q = dict(
            zip(
                self.frames["clear_time_quantiles"].q,
                self.frames["clear_time_quantiles"].seconds,
                strict=True,
            )
        )
        share = self.frames["relayer_share"]
        top_channel = share.iloc[0] if len(share) else None
        front = self.frames["frontrun"].iloc[0]
        return {
            **{f"rows_{k}": int(v) for k, v in rows.items()},
            "chain_pairs": len(self.frames["chain_pairs"]),
            "chains": int(
                pd.concat(
                    [
                        self.frames["chain_pairs"].source_chain,
                        self.frames["chain_pairs"].destination_chain,
                    ]
                ).nunique()
            ),
            "stuck_pct": float(status.get("stuck", 0.0)),
            "timeout_pct": float(status.get("timeout", 0.0)),
            "acknowledged_pct": float(status.get("acknowledged", 0.0)),
            "clear_time_p50_s": float(q.get(0.5, np.nan)),
            "clear_time_p99_s": float(q.get(0.99, np.nan)),
            "relayers_on_busiest_channel": int(top_channel.relayers_on_channel)
            if top_channel is not None
            else 0,
            "redundant_relay_pct": float(front.redundant_pct)
            if front.redundant_pct is not None
            else None,
        }


def profile_dataset(dsn: str | None = None) -> DatasetProfile:
    """Run the profile queries against the loaded tables."""
    return DatasetProfile(read_frames(dsn, _QUERIES))


def plot_profile(profile: DatasetProfile) -> Any:
    """One figure, six panels: chain pairs, clear times, status mix, stuck, relayer share, hourly volume."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 2, figsize=(13, 12))
    _plot_chain_pairs(axes[0, 0], profile)
    _plot_clear_times(axes[0, 1], profile)
    _plot_status_mix(axes[1, 0], profile)
    _plot_stuck(axes[1, 1], profile)
    _plot_relayer_share(axes[2, 0], profile)
    _plot_hourly_volume(axes[2, 1], profile)
    fig.tight_layout()
    return fig


def _plot_chain_pairs(ax: Any, profile: DatasetProfile) -> None:
    """Packets per chain pair, the top 15."""
    pairs = profile["chain_pairs"].head(15)
    labels = [
        f"{a.split('-')[0]} → {b.split('-')[0]}"
        for a, b in zip(pairs.source_chain, pairs.destination_chain, strict=True)
    ]
    ax.barh(labels[::-1], pairs.packets[::-1], color="#3b6ea8")
    ax.set_title("Packets per chain pair (top 15)")
    ax.set_xlabel("packets")


def _plot_clear_times(ax: Any, profile: DatasetProfile) -> None:
    """Clear times (send → ack) on a log scale, p50 and p99 marked."""
    sample = profile["clear_time_sample"].clear_time_seconds.astype(float)
    if len(sample):
        bins = np.logspace(np.log10(max(sample.min(), 0.5)), np.log10(sample.max() + 1), 60)
        ax.hist(sample, bins=bins, color="#3b6ea8")
        ax.set_xscale("log")
        for _, row in profile["clear_time_quantiles"].iterrows():
            if row.q in (0.5, 0.99):
                ax.axvline(row.seconds, color="#c0392b", ls="--", lw=1)
                ax.annotate(
                    f"p{int(row.q * 100)} {row.seconds:.0f}s",
                    (row.seconds, ax.get_ylim()[1] * 0.9),
                    fontsize=8,
                    color="#c0392b",
                )
    ax.set_title("Clear time (send → ack), log scale")
    ax.set_xlabel("seconds")


def _plot_status_mix(ax: Any, profile: DatasetProfile) -> None:
    """Packets per status, log scale, each with its share."""
    import matplotlib.pyplot as plt

    mix = profile["status_mix"]
    ax.bar(
        mix.status,
        mix.packets,
        color=["#2e7d32" if s == "acknowledged" else "#9e9e9e" for s in mix.status],
    )
    ax.set_yscale("log")
    ax.set_ylabel("packets")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    ax.set_title("Status mix (log scale)")
    for i, (n, pct) in enumerate(zip(mix.packets, mix.pct, strict=True)):
        ax.annotate(f"{pct:.2f}%", (i, n), ha="center", va="bottom", fontsize=8)


def _plot_stuck(ax: Any, profile: DatasetProfile) -> None:
    """Stuck packets by channel, the top 12, and the total."""
    stuck = profile["stuck"].head(12)
    if len(stuck):
        ax.barh(
            [f"{c} {ch}" for c, ch in zip(stuck.source_chain, stuck.source_channel, strict=True)][
                ::-1
            ],
            stuck.stuck_packets[::-1],
            color="#c0392b",
        )
    ax.set_xlabel("stuck packets")
    ax.set_title(
        f"Stuck packets by channel ({int(profile['stuck'].stuck_packets.sum()) if len(profile['stuck']) else 0} total)"
    )


def _plot_relayer_share(ax: Any, profile: DatasetProfile) -> None:
    """Each busy channel's packets split by relayer, biggest first."""
    import matplotlib.pyplot as plt

    share = profile["relayer_share"]
    top_channels = share.drop_duplicates(["source_chain", "source_channel"]).head(8)
    for i, (_, ch) in enumerate(top_channels.iterrows()):
        rows = share[
            (share.source_chain == ch.source_chain) & (share.source_channel == ch.source_channel)
        ]
        left = 0.0
        for rank, pct in enumerate(rows.share_pct.astype(float)):  # biggest relayer first
            ax.barh(i, pct, left=left, color=plt.cm.tab10(rank % 10), edgecolor="white", lw=0.5)
            if pct >= 12:
                ax.annotate(
                    f"{pct:.0f}%",
                    (left + pct / 2, i),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white",
                )
            left += pct
    ax.set_yticks(range(len(top_channels)))
    ax.set_yticklabels(
        [
            f"{c} {ch}"
            for c, ch in zip(top_channels.source_chain, top_channels.source_channel, strict=True)
        ]
    )
    ax.invert_yaxis()
    ax.set_xlabel("% of the channel's packets won (one colour per relayer, biggest first)")
    ax.set_title("Relayer share per channel (busiest 8)")


def _plot_hourly_volume(ax: Any, profile: DatasetProfile) -> None:
    """Packets per hour over the span."""
    import matplotlib.pyplot as plt

    hourly = profile["hourly_volume"]
    ax.plot(pd.to_datetime(hourly.hour), hourly.packets, color="#3b6ea8", lw=1)
    ax.set_title("Hourly volume")
    ax.set_ylabel("packets / hour")
    # rotate this panel's dates only (fig.autofmt_xdate would hide the other rows' tick labels)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
