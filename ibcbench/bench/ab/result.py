"""What an A/B found: per query the ratio, its interval, the verdict, the MDE and the work counters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, ClassVar

import pandas as pd

from ibcbench.results.metrics.metric import Metric, informational
from ibcbench.results.recorded import run_folder, save_frame
from ibcbench.results.runs import Run

#: the file :meth:`ABResult.save` writes the run's inputs, seed and round order to
AB_JSON = "ab.json"


@dataclass(frozen=True)
class ABResult:
    """``queries``: one row per query (see :func:`~ibcbench.bench.ab.benchmark.run_ab`);
    ``samples``: per round and query, both sides' medians and the ratio; ``order``: which side ran
    first in each round, per query (the queries' order within a round is the rows' order)."""

    queries: list[dict[str, Any]]
    samples: list[dict[str, Any]] = field(default_factory=list)
    order: list[dict[str, Any]] = field(default_factory=list)
    seed: int = 0
    scale: str = "tiny"
    rounds: int = 0
    stopped_by: str = "rounds"
    elapsed_s: float = 0.0
    practical_ratio: float = 1.05
    sides: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)

    def count(self, verdict: str) -> int:
        return sum(1 for q in self.queries if q["verdict"] == verdict)

    @property
    def regressions(self) -> list[dict[str, Any]]:
        return [q for q in self.queries if q["verdict"] == "regression"]

    @property
    def mde_median(self) -> float:
        return median(q["mde"] for q in self.queries) if self.queries else float("nan")

    #: the metric of each fixed key :meth:`key_numbers` makes; the per-query ``ratio_<query>`` keys
    #: have none (the A/B's own interval judges them, not a stored baseline)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational("ab_queries", "queries", "workload queries compared"),
        Metric(
            "ab_regressions", "lower", "queries", note="queries the A/B found slower: any counts"
        ),
        informational("ab_improvements", "queries", "queries the A/B found faster"),
        informational("ab_unchanged", "queries", "queries with no difference"),
        informational("ab_mde_median", "x", "the smallest change the run could have seen (median)"),
        informational("ab_rounds", "rounds", "interleaved rounds run"),
    )

    def key_numbers(self) -> dict[str, Any]:
        """The A/B's counts and median MDE, and per query its ratio (``ratio_<query>``)."""
        return {
            "ab_queries": len(self.queries),
            "ab_regressions": self.count("regression"),
            "ab_improvements": self.count("improvement"),
            "ab_unchanged": self.count("no difference"),
            "ab_mde_median": round(self.mde_median, 4),
            "ab_rounds": self.rounds,
            **{f"ratio_{q['query']}": round(q["ratio"], 4) for q in self.queries},
        }

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.queries)

    def summary_line(self) -> str:
        return (
            f"ab: {len(self.queries)} queries, {self.count('regression')} regressions, "
            f"{self.count('improvement')} improvements, {self.count('no difference')} unchanged "
            f"(MDE x{self.mde_median:.2f} median)"
        )

    def regression_lines(self) -> list[str]:
        """One line per regression: the timing's ratio, interval and p50s, and the counters' reason."""
        lines = []
        for q in self.regressions:
            timing = (
                f"x{q['ratio']:.2f} [{q['low']:.2f}, {q['high']:.2f}] "
                f"p50 {q['base_p50_ms']:.3f} -> {q['head_p50_ms']:.3f} ms"
            )
            reason = q.get("counters_regression")
            lines.append(
                f"regression: {q['query']} {reason} ({timing})"
                if reason
                else f"regression: {q['query']} {timing}"
            )
        return lines

    def table(self) -> str:
        """The per-query table the command prints."""
        head = f"{'query':<28} {'ratio':>6} {'interval':>15} {'MDE':>6} {'verdict':<13} {'buffers':>13}  plan change"
        lines = [head]
        for q in self.queries:
            buffers = f"{q['base_buffers']}->{q['head_buffers']}"
            lines.append(
                f"{q['query']:<28} x{q['ratio']:>5.2f} [{q['low']:>5.2f}, {q['high']:>5.2f}] "
                f"x{q['mde']:>5.2f} {q['verdict']:<13} {buffers:>13}  {q['plan_change'] or '-'}"
            )
        return "\n".join(lines)

    def save(self, run_dir: str | Path | Run | None) -> None:
        """``ab_queries`` and ``ab_rounds`` frames and :data:`AB_JSON` (inputs, seed, order)."""
        run = run_folder(run_dir)
        if run is None:
            return
        save_frame(self.frame(), "ab_queries", run)
        save_frame(pd.DataFrame(self.samples), "ab_rounds", run)
        run.replace_file(
            AB_JSON,
            json.dumps(
                {
                    "seed": self.seed,
                    "scale": self.scale,
                    "ab_rounds": self.rounds,
                    "stopped_by": self.stopped_by,
                    "elapsed_s": round(self.elapsed_s, 3),
                    "practical_ratio": self.practical_ratio,
                    "sides": self.sides,
                    "policy": self.policy,
                    "order": self.order,
                    "key_numbers": self.key_numbers(),
                },
                indent=2,
                default=str,
            ),
        )
