"""Structure-aware plan diffs: align two trees node by node and rank what changed.

Children are aligned with a sequence match on a node's signature (its relation, else its type), so
an added Sort or a join whose inputs swapped sides still lines up the scans underneath. A matched pair
reports changed node types (scan method, join method), indexes, estimates, time and buffers; an
unmatched node is added or removed. Changes are ranked by the time they move (exclusive ms), with
structural changes first when times tie.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from ibcbench.plans.model import Plan, PlanNode

NOISE_RATIO = 0.10
STRUCTURAL = ("node type", "join method", "index", "added", "removed", "chunks", "columnstore")
NOISE_MS = 0.2  # EXPLAIN ANALYZE of sub-millisecond queries jitters by about this much


@dataclass(frozen=True)
class NodeChange:
    path: str
    kind: str  # node type, index, join, estimate, time, buffers, added, removed, chunks
    before: str
    after: str
    delta_ms: float
    detail: str = ""

    @property
    def weight(self) -> float:
        structural = self.kind in (
            "node type",
            "join method",
            "index",
            "added",
            "removed",
            "chunks",
        )
        return (
            abs(self.delta_ms)
            + (1e6 if structural and abs(self.delta_ms) >= NOISE_MS else 0)
            + (0.5 if structural else 0)
        )


@dataclass
class PlanDiff:
    before: Plan
    after: Plan
    changes: list[NodeChange] = field(default_factory=list)
    pairs: list[tuple[PlanNode | None, PlanNode | None, str]] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.changes

    @property
    def time_ratio(self) -> float:
        return self.after.total_ms / self.before.total_ms if self.before.total_ms else float("nan")

    @property
    def verdict(self) -> str:
        a, b = self.before.total_ms, self.after.total_ms
        if abs(b - a) < NOISE_MS or (a and abs(b - a) / a < NOISE_RATIO):
            return "same"
        return "faster" if b < a else "slower"

    @property
    def explanation(self) -> str:
        structural = [c for c in self.changes if c.kind in STRUCTURAL]
        top = (structural or self.changes)[:1]
        if not top:
            return "no plan change"
        c = top[0]
        if c.kind in ("added", "removed"):
            return f"{c.kind} {c.after or c.before} at {c.path}"
        return f"{c.kind} at {c.path}: {c.before} → {c.after}"


def _signature(node: PlanNode) -> str:
    if node.relation:
        return "rel:" + node.relation
    if "Join" in node.node_type or node.node_type == "Nested Loop":
        return "join"
    return "type:" + node.node_type


def _family(node: PlanNode) -> str:
    t = node.node_type
    if "Join" in t or t == "Nested Loop":
        return "join"
    if "Scan" in t:
        return "scan"
    return t


def _compare(a: PlanNode, b: PlanNode, path: str, out: list[NodeChange]) -> None:
    delta = b.exclusive_ms - a.exclusive_ms
    if a.node_type != b.node_type or a.raw.get("Custom Plan Provider") != b.raw.get(
        "Custom Plan Provider"
    ):
        kind = "join method" if _family(a) == "join" and _family(b) == "join" else "node type"
        out.append(NodeChange(path, kind, a.label, b.label, delta))
    elif a.index != b.index:
        out.append(NodeChange(path, "index", a.index or "none", b.index or "none", delta))
    elif a.join_type != b.join_type:
        out.append(NodeChange(path, "join method", str(a.join_type), str(b.join_type), delta))
    moved = abs(delta) >= NOISE_MS and (
        not a.exclusive_ms or abs(delta) / max(a.exclusive_ms, 1e-9) >= NOISE_RATIO
    )
    if moved and (not out or out[-1].path != path):
        out.append(
            NodeChange(path, "time", f"{a.exclusive_ms:.3f} ms", f"{b.exclusive_ms:.3f} ms", delta)
        )
    if (a.shared_hit + a.shared_read) != (b.shared_hit + b.shared_read) and (
        a.children == [] or b.children == []
    ):
        out.append(
            NodeChange(
                path,
                "buffers",
                f"{a.shared_hit} hit / {a.shared_read} read",
                f"{b.shared_hit} hit / {b.shared_read} read",
                0.0,
            )
        )
    if round(a.est_rows) != round(b.est_rows):
        out.append(
            NodeChange(
                path,
                "estimate",
                f"{a.est_rows:,.0f} rows",
                f"{b.est_rows:,.0f} rows",
                0.0,
                f"actual {b.actual_rows if b.actual_rows is not None else '?'}",
            )
        )


def _align(
    a: PlanNode | None, b: PlanNode | None, path: str, out: list[NodeChange], pairs: list
) -> None:
    if a is None and b is not None:
        for node in b.walk():
            out.append(NodeChange(path, "added", "", node.label, node.exclusive_ms))
            pairs.append((None, node, path))
        return
    if b is None and a is not None:
        for node in a.walk():
            out.append(NodeChange(path, "removed", node.label, "", -node.exclusive_ms))
            pairs.append((node, None, path))
        return
    assert a is not None and b is not None
    pairs.append((a, b, path))
    _compare(a, b, path, out)
    sa, sb = [_signature(c) for c in a.children], [_signature(c) for c in b.children]
    if len(a.children) == len(b.children):
        matches = list(zip(a.children, b.children, strict=True))
        for i, (ca, cb) in enumerate(matches):
            _align(ca, cb, f"{path}/{i}", out, pairs)
        return
    matcher = difflib.SequenceMatcher(a=sa, b=sb, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for k in range(i2 - i1):
                _align(a.children[i1 + k], b.children[j1 + k], f"{path}/{i1 + k}", out, pairs)
        else:
            for k in range(i1, i2):
                _align(a.children[k], None, f"{path}/{k}", out, pairs)
            for k in range(j1, j2):
                _align(None, b.children[k], f"{path}/{k}", out, pairs)


def diff_plans(before: Plan, after: Plan) -> PlanDiff:
    """Node-by-node differences between two plans, biggest first. diff(A, A) is empty."""
    changes: list[NodeChange] = []
    pairs: list[tuple[PlanNode | None, PlanNode | None, str]] = []
    _align(before.root, after.root, "0", changes, pairs)
    if (
        before.chunks_scanned != after.chunks_scanned
        or before.chunks_excluded != after.chunks_excluded
    ):
        changes.append(
            NodeChange(
                "plan",
                "chunks",
                f"{before.chunks_scanned} scanned / {before.chunks_excluded} excluded",
                f"{after.chunks_scanned} scanned / {after.chunks_excluded} excluded",
                0.0,
            )
        )
    if (
        before.columnar_scans != after.columnar_scans
    ):  # chunks read from the columnstore or the rowstore
        changes.append(
            NodeChange(
                "plan",
                "columnstore",
                f"{before.columnar_scans} columnar chunk scans",
                f"{after.columnar_scans} columnar chunk scans",
                0.0,
            )
        )
    changes.sort(key=lambda c: -c.weight)
    return PlanDiff(before, after, changes, pairs)


@dataclass
class PlanSetDiff:
    """Per query: both plans' times, the verdict, and the change that explains it."""

    diffs: dict[str, PlanDiff]
    before_name: str = "A"
    after_name: str = "B"

    def worst_estimates(self, n: int = 10) -> Any:
        """The nodes with the largest q-error (max of estimate/actual, actual/estimate) on either side."""
        import pandas as pd

        rows = []
        for name, d in self.diffs.items():
            for side, plan in ((self.before_name, d.before), (self.after_name, d.after)):
                for node, q in plan.worst_estimates(3):
                    rows.append(
                        {
                            "query": name,
                            "config": side,
                            "node": node.label,
                            "estimated": round(node.est_rows),
                            "actual": round(node.actual_rows or 0),
                            "q_error": round(q, 1),
                        }
                    )
        frame = pd.DataFrame(
            rows, columns=["query", "config", "node", "estimated", "actual", "q_error"]
        )
        return frame.sort_values("q_error", ascending=False).head(n).reset_index(drop=True)

    def speedup(self, query: str) -> float:
        """Before / after execution time of one query (how many times faster it got)."""
        d = self.diffs[query]
        return d.before.total_ms / max(d.after.total_ms, 1e-6)

    def changed(self) -> list[str]:
        return [
            name for name, d in self.diffs.items() if any(c.kind in STRUCTURAL for c in d.changes)
        ]

    def summary(self) -> Any:
        import pandas as pd

        rows = []  # ratio to 3 significant digits: a 4000x speed-up is 0.000231, not 0.0
        for name, d in self.diffs.items():
            rows.append(
                {
                    "query": name,
                    f"{self.before_name}_ms": round(d.before.total_ms, 3),
                    f"{self.after_name}_ms": round(d.after.total_ms, 3),
                    "ratio": float(f"{d.time_ratio:.3g}"),
                    "verdict": d.verdict,
                    "explained_by": d.explanation,
                    "changes": len(d.changes),
                }
            )
        return pd.DataFrame(rows)


def diff_plan_sets(
    before: dict[str, Plan], after: dict[str, Plan], *, names: tuple[str, str] = ("A", "B")
) -> PlanSetDiff:
    shared = [q for q in before if q in after]
    return PlanSetDiff({q: diff_plans(before[q], after[q]) for q in shared}, *names)
