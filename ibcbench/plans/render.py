"""Plans and plan diffs as text, self-contained HTML and matplotlib figures."""

from __future__ import annotations

import html
from typing import Any

from ibcbench.plans.diff import PlanDiff, PlanSetDiff
from ibcbench.plans.model import Plan, PlanNode


def _line(node: PlanNode, depth: int) -> str:
    est = f"est {node.est_rows:,.0f}"
    act = f"act {node.actual_rows:,.0f}" if node.actual_rows is not None else "act ?"
    q = f" q={node.q_error:.1f}" if node.q_error and node.q_error >= 2 else ""
    never = " (never executed)" if not node.executed else ""
    return (
        f"{'  ' * depth}-> {node.label}  [incl {node.inclusive_ms:.3f} ms, excl {node.exclusive_ms:.3f} ms, "
        f"{est}, {act}{q}, buf {node.shared_hit}h/{node.shared_read}r]{never}"
    )


def format_plan_text(plan: Plan) -> str:
    lines = []

    def walk(node: PlanNode, depth: int) -> None:
        lines.append(_line(node, depth))
        for c in node.children:
            walk(c, depth + 1)

    walk(plan.root, 0)
    head = f"planning {plan.planning_ms or 0:.3f} ms, execution {plan.total_ms:.3f} ms"
    if plan.chunks_scanned or plan.chunks_excluded:
        head += f", chunks scanned {plan.chunks_scanned}, excluded {plan.chunks_excluded}"
    if plan.jit_ms:
        head += f", JIT {plan.jit_ms:.1f} ms"
    return head + "\n" + "\n".join(lines)


def format_diff_text(diff: PlanDiff, *, limit: int = 20) -> str:
    lines = [
        f"{diff.verdict}: {diff.before.total_ms:.3f} ms -> {diff.after.total_ms:.3f} ms (x{diff.time_ratio:.2f}); "
        f"buffers {diff.before.shared_hit + diff.before.shared_read} -> {diff.after.shared_hit + diff.after.shared_read}"
    ]
    if diff.is_empty:
        lines.append("  no differences")
    for c in diff.changes[:limit]:
        delta = f" ({c.delta_ms:+.3f} ms)" if c.delta_ms else ""
        lines.append(
            f"  [{c.kind}] {c.path}: {c.before} -> {c.after}{delta}{(' ' + c.detail) if c.detail else ''}"
        )
    if len(diff.changes) > limit:
        lines.append(f"  ... {len(diff.changes) - limit} more")
    return "\n".join(lines)


def format_set_diff_text(diff: PlanSetDiff, *, limit: int = 8) -> str:
    """Every query of ``diff`` whose plan changed, as text."""
    return (
        "\n\n".join(
            f"== {name}\n{format_diff_text(diff.diffs[name], limit=limit)}"
            for name in diff.changed()
        )
        or "no plan changes"
    )


_CSS = """
.plandiff { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
.plandiff .cols { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.plandiff .node { padding: 2px 6px; border-left: 3px solid transparent; white-space: pre-wrap; }
.plandiff .changed { background: #fff4e5; border-left-color: #e08a00; }
.plandiff .added { background: #e6f4ea; border-left-color: #2e7d32; }
.plandiff .removed { background: #fdecea; border-left-color: #c62828; }
.plandiff h4 { margin: 14px 0 4px; font-family: sans-serif; }
.plandiff .verdict-slower { color: #c62828; } .plandiff .verdict-faster { color: #2e7d32; }
"""


def _tree_html(diff: PlanDiff, side: int) -> str:
    changed = {c.path for c in diff.changes if c.kind not in ("estimate",)}
    out = []
    for before, after, path in diff.pairs:
        node = before if side == 0 else after
        other = after if side == 0 else before
        if node is None:
            out.append('<div class="node">&nbsp;</div>')
            continue
        depth = path.count("/")
        cls = (
            "removed"
            if other is None and side == 0
            else "added"
            if other is None
            else "changed"
            if path in changed
            else ""
        )
        text = f"{'  ' * depth}{node.label}  {node.exclusive_ms:.3f} ms excl · {node.shared_hit + node.shared_read} buf"
        out.append(f'<div class="node {cls}">{html.escape(text)}</div>')
    return "".join(out)


def render_diff_html(
    diff: PlanDiff | PlanSetDiff, *, title: str = "Plan diff", standalone: bool = False
) -> str:
    """Side-by-side trees with changed nodes highlighted; a plan set gets a summary table first."""
    parts = [f'<style>{_CSS}</style><div class="plandiff">']
    items: list[tuple[str, PlanDiff]]
    if isinstance(diff, PlanSetDiff):
        summary = diff.summary()
        rows = "".join(
            f"<tr><td>{html.escape(str(r.query))}</td><td>{r[1]:.3f}</td><td>{r[2]:.3f}</td><td>{r.ratio}</td>"
            f'<td class="verdict-{r.verdict}">{r.verdict}</td><td>{html.escape(r.explained_by)}</td></tr>'
            for r in summary.itertuples(index=False)
        )
        head = f"<tr><th>query</th><th>{html.escape(diff.before_name)} ms</th><th>{html.escape(diff.after_name)} ms</th><th>ratio</th><th>verdict</th><th>explained by</th></tr>"
        parts.append(f"<table>{head}{rows}</table>")
        items = list(diff.diffs.items())
    else:
        items = [(title, diff)]
    for name, d in items:
        parts.append(
            f'<h4>{html.escape(name)} — <span class="verdict-{d.verdict}">{d.verdict}</span> '
            f"({d.before.total_ms:.3f} → {d.after.total_ms:.3f} ms)</h4>"
        )
        parts.append(
            f'<div class="cols"><div>{_tree_html(d, 0)}</div><div>{_tree_html(d, 1)}</div></div>'
        )
    parts.append("</div>")
    body = "".join(parts)
    if standalone:
        return f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head><body>{body}</body></html>'
    return body


def plot_diff(
    diff: PlanDiff,
    *,
    top: int = 12,
    query: str | None = None,
    names: tuple[str, str] = ("before", "after"),
) -> Any:
    """Exclusive time of the aligned nodes, before and after, the biggest movers first; each bar
    is labelled with its own plan's node (a node the other plan lacks shows as "(none)"), and the
    title names ``query`` and the two configurations ``names``."""
    import matplotlib.pyplot as plt
    import numpy as np

    rows = []
    for before, after, _ in diff.pairs:
        rows.append(
            (
                before.label[:55] if before else "(none)",
                after.label[:55] if after else "(none)",
                before.exclusive_ms if before else 0.0,
                after.exclusive_ms if after else 0.0,
            )
        )
    rows.sort(key=lambda r: -abs(r[3] - r[2]))
    rows = rows[:top][::-1]
    fig, ax = plt.subplots(figsize=(11, 0.7 * len(rows) + 1.8))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r[2] for r in rows], 0.4, label=names[0], color="#9e9e9e")
    ax.barh(y + 0.2, [r[3] for r in rows], 0.4, label=names[1], color="#2f5d9b")
    ax.set_yticks(np.concatenate([y - 0.2, y + 0.2]))
    ax.set_yticklabels([r[0] for r in rows] + [r[1] for r in rows], fontsize=7)
    ax.set_xlabel("exclusive time (ms)")
    what = f"{query}: " if query else ""
    ax.set_title(
        f"{what}{diff.verdict}, {diff.before.total_ms:.3f} ms ({names[0]}) → "
        f"{diff.after.total_ms:.3f} ms ({names[1]})",
        fontsize=10,
    )
    ax.legend()
    fig.tight_layout()
    return fig
