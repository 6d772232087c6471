"""The workload's query plans under named configurations (an index strategy, server settings): captured
into run folders and diffed node by node."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ibcbench.bench.indexes import STRATEGIES, apply_strategy
from ibcbench.bench.workload import workload_queries
from ibcbench.db import connect
from ibcbench.errors import BenchmarkError, ConfigError
from ibcbench.inputs import SETTING_RE, check_name, safe_child
from ibcbench.plans import (
    Plan,
    PlanSetDiff,
    capture_plans,
    diff_plan_sets,
    plot_diff,
    render_diff_html,
    save_plans,
)
from ibcbench.results.metrics.metric import ESTIMATE, RATIO, Metric, informational
from ibcbench.results.recorded import run_folder, save_figure
from ibcbench.results.runs import Run

ANALYZED_TABLES = "packet_flow, clearing_operations, network_stats, relayer_performance"
#: a run folder's captured plans, one folder per configuration
PLANS_FOLDER = "plans"
#: the plan diffs the report embeds, relative to the run folder (written by :func:`write_diff_html`)
DIFF_HTML = Path(PLANS_FOLDER) / "diff.html"


def plans_folder(run_dir: str | Path | Run | None) -> Path | None:
    """Where a run folder's captured plans go (None without a run folder, as in JupyterLab)."""
    run = run_folder(run_dir)
    return None if run is None else run.path / PLANS_FOLDER


def write_diff_html(
    run_dir: str | Path | Run | None, diffs: Mapping[str, PlanSetDiff]
) -> Path | None:
    """Write ``<run_dir>/plans/diff.html`` (:data:`DIFF_HTML`): one section per titled plan set diff."""
    run = run_folder(run_dir)
    if run is None:
        return None
    path = run.path / DIFF_HTML
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(render_diff_html(d, title=title) for title, d in diffs.items()))
    return path


def biggest_change(diff: PlanSetDiff) -> str:
    """The query whose execution time changed most in the after configuration's favour."""
    return str(diff.summary().sort_values("ratio", kind="stable").iloc[0]["query"])


def plot_biggest_change(diff: PlanSetDiff) -> Any:
    """:func:`plot_diff` of :func:`biggest_change`, titled with its query and configurations."""
    query = biggest_change(diff)
    return plot_diff(diff.diffs[query], query=query, names=(diff.before_name, diff.after_name))


@dataclass(frozen=True)
class PlanConfig:
    """A named configuration: an index strategy (or None to leave indexes as they are) and settings."""

    name: str
    index_strategy: str | None = None
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "configuration name")
        if self.index_strategy is not None and self.index_strategy not in STRATEGIES:
            raise ConfigError(
                f"index strategy {self.index_strategy!r} of configuration {self.name} is "
                f"unknown: use one of {', '.join(STRATEGIES)}"
            )
        for key in self.settings:
            if not isinstance(key, str) or not SETTING_RE.fullmatch(key):
                raise ConfigError(
                    f"setting name {key!r} of configuration {self.name} is invalid: use a "
                    "server setting's name, such as random_page_cost"
                )

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "index_strategy": self.index_strategy, "settings": self.settings}


def capture_configuration(
    dsn: str | None,
    queries: Iterable[tuple[str, str, Sequence[Any]]],
    *,
    config: PlanConfig,
    out_dir: Path | None = None,
) -> dict[str, Plan]:
    """Apply ``config``'s index strategy, ANALYZE, and capture every query under its settings; with
    ``out_dir``, save them as ``<out_dir>/<config>/*.json``."""
    if config.index_strategy is not None:
        apply_strategy(dsn, config.index_strategy)
    with connect(dsn) as conn:
        conn.execute(f"ANALYZE {ANALYZED_TABLES}")
        conn.commit()
    plans = capture_plans(dsn, queries, settings=config.settings)
    if out_dir is not None:
        save_plans(plans, safe_child(out_dir, config.name), config=config.as_dict())
    return plans


def compare_configurations(
    dsn: str | None,
    a: PlanConfig,
    b: PlanConfig,
    *,
    queries: Sequence[tuple[str, str, Sequence[Any]]] | None = None,
    out_dir: Path | None = None,
    restore_strategy: str | None = "service",
) -> PlanSetDiff:
    """Capture the workload under two configurations and diff them; the service's indexes are restored after."""
    if queries is None:
        with connect(dsn) as conn:
            queries = workload_queries(conn)
    try:
        pa = capture_configuration(dsn, queries, config=a, out_dir=out_dir)
        pb = capture_configuration(dsn, queries, config=b, out_dir=out_dir)
    finally:
        if restore_strategy and (a.index_strategy or b.index_strategy):
            apply_strategy(dsn, restore_strategy)
    result = diff_plan_sets(pa, pb, names=(a.name, b.name))
    if out_dir is not None:
        safe_child(out_dir, f"diff_{a.name}_vs_{b.name}.html").write_text(
            render_diff_html(result, title=f"{a.name} vs {b.name}", standalone=True)
        )
    return result


@dataclass(frozen=True)
class RandomPageCostResult:
    """The workload's plans under two random_page_cost values."""

    diff: PlanSetDiff

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational(
            "random_page_cost_plans_changed",
            "plans",
            "how many plans a setting changed: neither direction is better",
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        return {"random_page_cost_plans_changed": len(self.diff.changed())}

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write :data:`DIFF_HTML` with this one diff (a :class:`PlanComparisonResult` with
        ``second`` writes both of its diffs there instead)."""
        write_diff_html(run_dir, {"random_page_cost": self.diff})


def compare_random_page_cost(
    dsn: str | None, costs: Sequence[str] = ("4", "1.1"), *, out_dir: Path | None = None
) -> RandomPageCostResult:
    """The workload's plans at two random_page_cost values, indexes as they are."""
    if len(costs) != 2:
        raise BenchmarkError(f"give two random_page_cost values to compare, not {list(costs)}")
    a, b = (PlanConfig(f"random_page_cost_{c}", None, {"random_page_cost": str(c)}) for c in costs)
    return RandomPageCostResult(compare_configurations(dsn, a, b, out_dir=out_dir))


@dataclass(frozen=True)
class PlanComparisonResult:
    """Notebook 04's result: the plans under two configurations and a second, settings-only pair."""

    diff: PlanSetDiff
    second: PlanSetDiff | None = None

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
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
    )

    def key_numbers(self) -> dict[str, Any]:
        summary = self.diff.summary()
        biggest = biggest_change(self.diff)
        numbers = {
            "queries": len(summary),
            "faster": int((summary.verdict == "faster").sum()),
            "slower": int((summary.verdict == "slower").sum()),
            "plans_changed": len(self.diff.changed()),
            "biggest_change_query": biggest,
            "biggest_speedup": self.diff.speedup(biggest),
            "worst_q_error": float(self.diff.worst_estimates().q_error.max()),
        }
        if self.second is not None:
            numbers.update(RandomPageCostResult(self.second).key_numbers())
        return numbers

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write :data:`DIFF_HTML` (both diffs) and the biggest change's figure."""
        run = run_folder(run_dir)
        if run is None:
            return
        diffs = {"plans": self.diff}
        if self.second is not None:
            diffs["random_page_cost"] = self.second
        write_diff_html(run, diffs)
        save_figure(plot_biggest_change(self.diff), "04_biggest_plan_change", run, close=True)
