"""The index strategies benchmark's result: its tables, winners, speed-ups, key numbers, and figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ibcbench.results.metrics.metric import RATIO, TIMING, Metric, informational, lookup
from ibcbench.results.recorded import run_folder, save_figure
from ibcbench.results.runs import Run


@dataclass(frozen=True)
class IndexStrategyResult:
    latency: pd.DataFrame
    plans: pd.DataFrame
    indexes: pd.DataFrame
    ingest: pd.DataFrame
    hypo: pd.DataFrame
    usage: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def winners(self) -> pd.DataFrame:
        best = self.latency.loc[self.latency.groupby("query").p50_ms.idxmin()]
        return best[["query", "strategy", "p50_ms"]].reset_index(drop=True)

    def p50(self, strategy: str, query: str) -> float:
        sel = self.latency[(self.latency.strategy == strategy) & (self.latency["query"] == query)]
        return float(sel.p50_ms.iloc[0])

    def strategies(self) -> list[str]:
        """The strategies measured, in the order they ran."""
        return list(dict.fromkeys(self.latency.strategy))

    def speedup(self, query: str, *, before: str = "none", after: str = "service") -> float | None:
        """p50 under ``before`` / p50 under ``after`` (None unless both were measured)."""
        measured = set(self.strategies())
        if not {before, after} <= measured:
            return None
        return self.p50(before, query) / self.p50(after, query)

    def index_cost(self) -> pd.DataFrame:
        """Per strategy: the kit's index bytes and build seconds, summed over its indexes."""
        return self.indexes.groupby("strategy")[["size_bytes", "build_s"]].sum()

    def used_indexes(self) -> pd.DataFrame:
        """Index scans per index (rows) and strategy (columns), indexes that were scanned only."""
        used = self.usage[self.usage.scans > 0]
        return used.pivot(index="index", columns="strategy", values="scans")

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        Metric(
            "wallet_history_p50_ms_none",
            "lower",
            "ms",
            TIMING,
            0.05,
            note="wallet history p50 without secondary indexes: a scan",
        ),
        lookup("wallet_history_p50_ms_service", "wallet history p50 with the service's indexes"),
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
        informational("winners", "", "the fastest strategy per query (names)"),
        Metric(
            "ingest_rows_per_s", "higher", "rows/s", TIMING, note="bulk insert rate per strategy"
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        """What notebook 02 records: the service strategy's wallet and packet-lookup speed-ups, winners, ingest."""
        measured = set(self.strategies())
        winners = self.winners()
        return {
            "wallet_history_p50_ms_none": self.p50("none", "wallet_history")
            if "none" in measured
            else None,
            "wallet_history_p50_ms_service": self.p50("service", "wallet_history")
            if "service" in measured
            else None,
            "wallet_history_speedup": self.speedup("wallet_history"),
            "packet_lookup_speedup": self.speedup("packet_by_channel_sequence"),
            "winners": dict(zip(winners["query"], winners.strategy, strict=True)),
            "ingest_rows_per_s": dict(
                zip(self.ingest.strategy, self.ingest.rows_per_s, strict=True)
            ),
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write the result tables (``index_*``), the manifest entry and the two figures."""
        run = run_folder(run_dir)
        if run is None:
            return
        for name in ("latency", "plans", "indexes", "ingest", "hypo", "usage"):
            run.write_frame(f"index_{name}", getattr(self, name))
        run.update_manifest(index_strategies=self.manifest)
        save_figure(plot_latency(self), "02_latency_by_strategy", run, close=True)
        save_figure(plot_cost(self), "02_cost_by_strategy", run, close=True)


def plot_latency(result: IndexStrategyResult) -> Any:
    """Grouped bars of p50 per query and strategy (log scale), each query's winner outlined."""
    import matplotlib.pyplot as plt

    lat = result.latency
    queries = list(dict.fromkeys(lat["query"]))
    strategies = list(dict.fromkeys(lat.strategy))
    width = 0.8 / len(strategies)
    fig, ax = plt.subplots(figsize=(12, 5))
    winners = dict(zip(result.winners()["query"], result.winners().strategy, strict=True))
    for j, s in enumerate(strategies):
        values = [
            float(lat[(lat.strategy == s) & (lat["query"] == q)].p50_ms.iloc[0]) for q in queries
        ]
        bars = ax.bar(np.arange(len(queries)) + j * width, values, width, label=s)
        for k, q in enumerate(queries):
            if winners[q] == s:
                bars[k].set_edgecolor("black")
                bars[k].set_linewidth(2)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(queries)) + 0.4 - width / 2)
    ax.set_xticklabels(queries, rotation=20, ha="right")
    ax.set_ylabel("p50 latency (ms, log scale)")
    ax.set_title("Query latency by index strategy (winner outlined)")
    ax.legend(ncol=len(strategies))
    fig.tight_layout()
    return fig


def plot_cost(result: IndexStrategyResult) -> Any:
    """Index size against ingest rate per strategy: what each strategy costs."""
    import matplotlib.pyplot as plt

    size = result.indexes.groupby("strategy").size_bytes.sum() / 1e6
    ingest = result.ingest.set_index("strategy").rows_per_s
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in ingest.index:
        ax.scatter(size.get(s, 0.0), ingest[s], s=80)
        ax.annotate(s, (size.get(s, 0.0), ingest[s]), textcoords="offset points", xytext=(6, 4))
    ax.set_xlabel("kit index size (MB)")
    ax.set_ylabel("ingest (rows/s, INSERT ... SELECT)")
    ax.set_title("What each strategy costs")
    fig.tight_layout()
    return fig
