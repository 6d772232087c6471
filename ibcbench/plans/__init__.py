"""EXPLAIN ANALYZE capture, parsing and structure-aware comparison."""

from ibcbench.plans.capture import (
    PlanConfig,
    capture_plan,
    capture_plans,
    compare_configurations,
    load_plans,
    save_plans,
)
from ibcbench.plans.diff import NodeChange, PlanDiff, PlanSetDiff, diff_plan_sets, diff_plans
from ibcbench.plans.model import Plan, PlanNode, load_plan, plan_from_json, plan_from_text
from ibcbench.plans.render import format_diff_text, format_plan_text, plot_diff, render_diff_html

__all__ = [
    "NodeChange", "Plan", "PlanConfig", "PlanDiff", "PlanNode", "PlanSetDiff", "capture_plan", "capture_plans",
    "compare_configurations", "diff_plan_sets", "diff_plans", "format_diff_text", "format_plan_text", "load_plan",
    "load_plans", "plan_from_json", "plan_from_text", "plot_diff", "render_diff_html", "save_plans",
]  # fmt: skip
