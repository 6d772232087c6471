"""EXPLAIN ANALYZE capture, parsing and structure-aware comparison: a library of its own.

Imports only ``ibcbench.db`` and ``ibcbench.errors``; the queries to capture come from the caller (the
benchmarks' named configurations live in :mod:`ibcbench.bench.explain`)."""

from ibcbench.plans.capture import capture_plan, capture_plans, load_plans, save_plans
from ibcbench.plans.diff import NodeChange, PlanDiff, PlanSetDiff, diff_plan_sets, diff_plans
from ibcbench.plans.model import Plan, PlanNode, load_plan, plan_from_json, plan_from_text
from ibcbench.plans.render import (
    format_diff_text,
    format_plan_text,
    format_set_diff_text,
    plot_diff,
    render_diff_html,
)

__all__ = [
    "NodeChange",
    "Plan",
    "PlanDiff",
    "PlanNode",
    "PlanSetDiff",
    "capture_plan",
    "capture_plans",
    "diff_plan_sets",
    "diff_plans",
    "format_diff_text",
    "format_plan_text",
    "format_set_diff_text",
    "load_plan",
    "load_plans",
    "plan_from_json",
    "plan_from_text",
    "plot_diff",
    "render_diff_html",
    "save_plans",
]
