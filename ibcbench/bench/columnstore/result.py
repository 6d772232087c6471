"""The columnstore benchmark's result: its frames, speed-ups, key numbers, recommendation and figure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ibcbench.bench.columnstore.copies import BASELINE
from ibcbench.results.metrics.metric import RATIO, TIMING, Metric, informational
from ibcbench.results.recorded import run_folder, save_figure
from ibcbench.results.runs import Run


@dataclass(frozen=True)
class ColumnstoreResult:
    """Frames of one columnstore benchmark; ``available`` is ``"measured"`` or why not."""

    available: str
    settings: pd.DataFrame
    chunks: pd.DataFrame
    queries: pd.DataFrame
    ingest: pd.DataFrame
    dml: pd.DataFrame
    policy: dict[str, Any]
    recommendation: str
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.available == "measured"

    def speedups(self) -> pd.DataFrame:
        """Per query and setting: rowstore p50 / columnstore p50 (above 1: the columnstore is faster),
        with the interval the two p50 intervals allow (low = rowstore low / columnstore high); an
        interval that holds 1 is "no difference"."""
        cols = ["query", "kind", "setting", "speedup", "speedup_low", "speedup_high", "verdict"]
        if not self.measured:
            return pd.DataFrame(columns=cols)
        q = self.queries
        base = q[q.setting == BASELINE].set_index("query")
        rows = []
        for r in q[q.setting != BASELINE].itertuples():
            b = base.loc[r.query]
            low = ratio(b.p50_ci_low_ms, r.p50_ci_high_ms)
            high = ratio(b.p50_ci_high_ms, r.p50_ci_low_ms)
            verdict = (
                "faster"
                if low is not None and low > 1
                else "slower"
                if high is not None and high < 1
                else "no difference"
            )
            rows.append(
                {
                    "query": r.query,
                    "kind": r.kind,
                    "setting": r.setting,
                    "speedup": ratio(b.p50_ms, r.p50_ms),
                    "speedup_low": low,
                    "speedup_high": high,
                    "verdict": verdict,
                }
            )
        return pd.DataFrame(rows, columns=cols)

    @property
    def recommended_setting(self) -> str | None:
        """The setting the recommendation names: the best analytics speed-up (geometric mean)."""
        return best_setting(self.queries, "analytics") if self.measured else None

    def winners(self) -> pd.DataFrame:
        """The fastest setting per query (the rowstore included)."""
        if not self.measured:
            return pd.DataFrame(columns=["query", "kind", "setting", "p50_ms"])
        best = self.queries.loc[self.queries.groupby("query").p50_ms.idxmin()]
        return best[["query", "kind", "setting", "p50_ms"]].reset_index(drop=True)

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational(
            "columnstore", "", "'measured', or why the columnstore was not (the edition)"
        ),
        informational(
            "columnstore_policy_error",
            "",
            "the columnstore policy job's last job_errors message (text)",
            optional=True,
        ),
        informational(
            "columnstore_setting", "", "the recommended segmentby setting (a name)", optional=True
        ),
        Metric(
            "compression_ratio",
            "higher",
            "x",
            0.1,
            0.05,
            note="bytes before / after, compressed chunks, per setting",
            optional=True,
        ),
        Metric(
            "compression_ratio_recommended",
            "higher",
            "x",
            0.1,
            0.05,
            note="that ratio for the recommended setting",
            optional=True,
        ),
        Metric(
            "analytics_speedup",
            "higher",
            "x",
            RATIO,
            note="rowstore p50 / columnstore p50 per analytics query",
            optional=True,
        ),
        Metric(
            "point_lookup_slowdown",
            "lower",
            "x",
            RATIO,
            note="columnstore p50 / rowstore p50 per point lookup",
            optional=True,
        ),
        Metric(
            "ingest_rows_per_s_rowstore",
            "higher",
            "rows/s",
            TIMING,
            note="INSERT of a new hour, rowstore copy",
            optional=True,
        ),
        Metric(
            "ingest_rows_per_s_columnstore",
            "higher",
            "rows/s",
            TIMING,
            note="INSERT of a new hour, older chunks in the columnstore",
            optional=True,
        ),
        Metric(
            "backfill_rows_per_s_compressed_chunk",
            "higher",
            "rows/s",
            TIMING,
            note="INSERT into a compressed chunk's time range",
            optional=True,
        ),
        informational(
            "columnstore_policy_runs",
            "runs",
            "runs of the columnstore policy job seen",
            optional=True,
        ),
        Metric(
            "columnstore_policy_failures",
            "lower",
            "runs",
            note="failed runs of the columnstore policy job",
            optional=True,
        ),
        informational(
            "columnstore_recommendation", "", "the recommendation, in words", optional=True
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        """The figures the report and ``report --baseline`` read; speed-ups and slow-downs are those of
        the recommended setting."""
        if not self.measured:
            return {"columnstore": self.available}
        best = self.recommended_setting
        s = self.speedups()
        mine = s[s.setting == best].set_index("query")
        ratios = dict(zip(self.settings.setting, self.settings.compression_ratio, strict=True))
        ing = self.ingest.set_index("scenario").rows_per_s
        return {
            "columnstore": "measured",
            "columnstore_setting": best,
            "compression_ratio": ratios,
            "compression_ratio_recommended": ratios[best],
            "analytics_speedup": {
                q: float(mine.speedup[q]) for q in mine.index if mine.kind[q] == "analytics"
            },
            "point_lookup_slowdown": {
                q: ratio(1.0, float(mine.speedup[q])) for q in mine.index if mine.kind[q] == "point"
            },
            "ingest_rows_per_s_rowstore": float(ing["rowstore: new hour"]),
            "ingest_rows_per_s_columnstore": float(ing["columnstore: new hour"]),
            "backfill_rows_per_s_compressed_chunk": float(
                ing["columnstore: backfill into a compressed chunk"]
            ),
            "columnstore_policy_runs": self.policy.get("total_runs"),
            "columnstore_policy_failures": self.policy.get("total_failures"),
            "columnstore_policy_error": self.policy.get("last_error"),
            "columnstore_recommendation": self.recommendation,
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write ``ts_columnstore_*`` (settings, chunks, queries, ingest, dml) and the figure."""
        run = run_folder(run_dir)
        if run is None:
            return
        for name in ("settings", "chunks", "queries", "ingest", "dml"):
            run.write_frame(f"ts_columnstore_{name}", getattr(self, name))
        if self.measured:
            save_figure(plot_columnstore(self), "05_columnstore", run, close=True)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b or pd.isna(a) or pd.isna(b) else round(a / b, 3)


def geomean_speedups(queries: pd.DataFrame, kind: str) -> pd.Series:
    """Per setting, the geometric mean over the queries of ``kind`` of rowstore p50 / its p50."""
    base = queries[queries.setting == BASELINE].set_index("query").p50_ms
    part = queries[(queries.kind == kind) & (queries.setting != BASELINE)]
    logs = np.log([base[q] / p for q, p in zip(part["query"], part.p50_ms, strict=True)])
    return pd.Series(logs, index=part.setting.values).groupby(level=0).mean().pipe(np.exp)


def best_setting(queries: pd.DataFrame, kind: str) -> str:
    return str(geomean_speedups(queries, kind).idxmax())


def recommend(settings: pd.DataFrame, queries: pd.DataFrame) -> str:
    setting = best_setting(queries, "analytics")
    gain = float(geomean_speedups(queries, "analytics")[setting])
    point = float(geomean_speedups(queries, "point")[setting])
    chosen = settings.set_index("setting").loc[setting]
    ratio, seg, order = float(chosen.compression_ratio), chosen.segmentby, chosen.orderby
    worst = settings.sort_values("compression_ratio").iloc[0]
    cost = (
        f"point lookups take x{1 / point:.2f} the rowstore's time"
        if point < 1
        else f"point lookups keep up (x{point:.2f} the rowstore's speed)"
    )
    text = (
        f"For an analytics-heavy mix: segmentby '{seg}', orderby '{order}' ({setting}): "
        f"{ratio:.1f}x smaller, analytics queries x{gain:.2f} faster (geometric mean over the "
        f"analytics queries); the cost: {cost}. Keep the newest chunk in the rowstore (a columnstore "
        "policy whose 'after' is past the ingest window) so inserts and updates of recent packets stay cheap."
    )
    if worst.compression_ratio is not None and worst.compression_ratio < 1:
        text += (
            f" Avoid segmentby '{worst.segmentby}': too few rows per segment, the chunks grow "
            f"(x{worst.compression_ratio:.2f})."
        )
    return text


def empty_result(reason: str) -> ColumnstoreResult:
    return ColumnstoreResult(
        reason,
        pd.DataFrame(
            columns=[
                "setting",
                "segmentby",
                "orderby",
                "chunk_interval",
                "chunks_converted",
                "compress_s",
                "compressed_chunks_before_bytes",
                "compressed_chunks_after_bytes",
                "compression_ratio",
                "table_before_bytes",
                "table_after_bytes",
            ]
        ),
        pd.DataFrame(
            columns=["setting", "chunk", "status", "before_bytes", "after_bytes", "ratio"]
        ),
        pd.DataFrame(
            columns=[
                "setting",
                "query",
                "kind",
                "n",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "mean_ms",
                "p50_ci_low_ms",
                "p50_ci_high_ms",
                "stopped_by",
                "warmup_runs",
                "shared_buffers",
                "columnar_scans",
                "chunks_scanned",
                "same_answer_as_rowstore",
            ]
        ),
        pd.DataFrame(columns=["scenario", "rows", "elapsed_ms", "rows_per_s"]),
        pd.DataFrame(columns=["setting", "operation", "elapsed_ms"]),
        {},
        reason,
    )


def plot_columnstore(result: ColumnstoreResult) -> Any:
    """Compression ratio per setting, and per-query speed-up against the rowstore (log scale); None
    when the columnstore was not measured (the Apache edition)."""
    if not result.measured:
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    s = result.settings.set_index("setting").compression_ratio
    s.plot.bar(ax=axes[0], rot=0, color="#2f5d9b")
    axes[0].set_ylabel("bytes before / after")
    axes[0].set_title("Compression ratio (compressed chunks)")
    sp = result.speedups().pivot(index="query", columns="setting", values="speedup")
    sp.plot.barh(ax=axes[1], logx=True)
    axes[1].axvline(1, color="#5c6679", lw=1)
    axes[1].set_xlabel("rowstore p50 / columnstore p50 (log; right of 1 is faster)")
    axes[1].set_title("Speed-up per query")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
