"""EXPLAIN plans as trees with derived figures; parsed from JSON (any PostgreSQL version) or text.

Times: PostgreSQL reports a node's ``Actual Total Time`` per loop. A node's inclusive time is that
times its loops, except for nodes run by parallel workers (below a Gather), whose loops ran at the
same time: their inclusive time is divided by the processes that ran them (workers + leader), so
a child never costs more wall time than its Gather. Exclusive time is inclusive time minus the
children's inclusive time (never below zero). Estimated and actual rows are per loop, as EXPLAIN
reports them, and so is the q-error: max(est/actual, actual/est) of one loop, both clamped to at
least 1 row (a node estimated at 1 row that returns 0 in each of 1,000 loops has q = 1, not 1000).
Unknown node types and fields are kept in ``raw``.

Chunks and partitions, one definition for the whole kit:

- a **chunk scan** is a scan node over a TimescaleDB chunk (``_hyper_<n>_<m>_chunk``, under a
  ``ChunkAppend`` or an ``Append``, or alone when the planner kept a single chunk); given the leaf
  partitions of a declaratively partitioned table, a scan of one of them counts the same way. A
  compressed chunk's decompressing node (``DecompressChunk``, ``ColumnarIndexScan`` in newer
  releases) names the chunk and counts once; the scan of its ``compress_hyper_*`` table below does not.
- **scanned** chunks are chunk scans that ran (``Actual Loops`` > 0; every chunk scan in a plan
  without ANALYZE). A ChunkAppend keeps the chunks it excluded at runtime as children with zero loops:
  those are not scanned.
- **excluded** chunks are the ones the executor reports it dropped: ``Chunks excluded during
  startup`` and ``Chunks excluded during runtime`` of a ChunkAppend, and ``Subplans Removed`` of an
  Append or MergeAppend (PostgreSQL's partition pruning at executor start-up). Chunks the planner
  never put into the plan (plan-time exclusion with a known value) are in neither count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ibcbench.errors import PlanError

CHUNK_RE = re.compile(r"_hyper_\d+_\d+_chunk")
_EXCLUSION_KEYS = (
    "Chunks excluded during startup",
    "Chunks excluded during runtime",
    "Subplans Removed",
)
#: custom scan providers that read TimescaleDB columnstore (compressed) chunks (2.28: ColumnarScan,
#: ColumnarIndexScan; before 2.18: DecompressChunk)
COLUMNAR_PROVIDERS = ("ColumnarScan", "ColumnarIndexScan", "DecompressChunk")


@dataclass
class PlanNode:
    node_type: str
    raw: dict[str, Any]
    children: list[PlanNode] = field(default_factory=list)
    parallel_processes: int = 1  # processes that ran this node concurrently (workers + leader)

    # ---- fields, tolerant of absent keys ----
    @property
    def relation(self) -> str | None:
        return self.raw.get("Relation Name")

    @property
    def alias(self) -> str | None:
        return self.raw.get("Alias")

    @property
    def index(self) -> str | None:
        return self.raw.get("Index Name")

    @property
    def join_type(self) -> str | None:
        return self.raw.get("Join Type")

    @property
    def loops(self) -> int:
        return int(self.raw.get("Actual Loops", 1) or 0)

    @property
    def executed(self) -> bool:
        return "Actual Loops" not in self.raw or self.loops > 0

    @property
    def est_rows(self) -> float:
        """The planner's rows per loop (``Plan Rows``)."""
        return float(self.raw.get("Plan Rows", 0))

    @property
    def actual_rows(self) -> float | None:
        """Rows per loop (``Actual Rows``: PostgreSQL averages them over the loops)."""
        if "Actual Rows" not in self.raw:
            return None
        return float(self.raw["Actual Rows"])

    @property
    def q_error(self) -> float | None:
        """Per-loop q-error, est and actual each clamped to >= 1 row; None if never executed."""
        act = self.actual_rows
        if act is None or not self.executed:
            return None
        est, act = max(self.est_rows, 1.0), max(act, 1.0)
        return max(est / act, act / est)

    @property
    def rows_removed(self) -> float:
        return float(self.raw.get("Rows Removed by Filter", 0)) * max(self.loops, 1)

    @property
    def inclusive_ms(self) -> float:
        per_loop = float(self.raw.get("Actual Total Time", 0.0))
        return per_loop * self.loops / max(self.parallel_processes, 1)

    @property
    def exclusive_ms(self) -> float:
        return max(0.0, self.inclusive_ms - sum(c.inclusive_ms for c in self.children))

    @property
    def shared_hit(self) -> int:
        return int(self.raw.get("Shared Hit Blocks", 0))

    @property
    def shared_read(self) -> int:
        return int(self.raw.get("Shared Read Blocks", 0))

    @property
    def total_cost(self) -> float:
        return float(self.raw.get("Total Cost", 0.0))

    @property
    def is_chunk_scan(self) -> bool:
        """A scan of a TimescaleDB chunk (see the module's definition)."""
        return bool(self.relation and CHUNK_RE.fullmatch(self.relation))

    def is_partition_scan(self, partitions: Collection[str] = ()) -> bool:
        """A chunk scan, or a scan of one of ``partitions`` (leaf partitions' relation names)."""
        return self.is_chunk_scan or (self.relation is not None and self.relation in partitions)

    @property
    def excluded_children(self) -> int:
        """Children this node's executor dropped (ChunkAppend's startup/runtime exclusion, Append's
        ``Subplans Removed``)."""
        return sum(int(self.raw.get(key, 0) or 0) for key in _EXCLUSION_KEYS)

    @property
    def label(self) -> str:
        """``Index Scan using idx on packet_flow`` style."""
        parts = [self.node_type]
        if self.raw.get("Custom Plan Provider"):
            parts = [f"{self.node_type} ({self.raw['Custom Plan Provider']})"]
        if self.join_type and "Join" in self.node_type and self.join_type != "Inner":
            parts.append(f"[{self.join_type}]")
        if self.index:
            parts.append(f"using {self.index}")
        if self.relation:
            parts.append(f"on {self.relation}")
        return " ".join(parts)

    def walk(self) -> Iterator[PlanNode]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Plan:
    root: PlanNode
    planning_ms: float | None = None
    execution_ms: float | None = None
    jit: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    query: str | None = None

    def nodes(self) -> list[PlanNode]:
        return list(self.root.walk())

    @property
    def total_ms(self) -> float:
        if self.execution_ms is not None:
            return self.execution_ms
        return self.root.inclusive_ms

    @property
    def shared_hit(self) -> int:
        return self.root.shared_hit

    @property
    def shared_read(self) -> int:
        return self.root.shared_read

    @property
    def indexes(self) -> set[str]:
        return {n.index for n in self.nodes() if n.index}

    @property
    def node_kinds(self) -> tuple[str, ...]:
        """Node types, depth first from the root (``Custom Scan`` for ChunkAppend and friends)."""
        return tuple(n.node_type for n in self.nodes())

    @property
    def top_scan(self) -> str:
        """The first scan node's type, depth first from the root; the root's type when none scans."""
        kinds = self.node_kinds
        return next((k for k in kinds if "Scan" in k), kinds[0])

    def partitions_scanned(self, partitions: Collection[str] = ()) -> int:
        """Chunk scans that ran, counting scans of ``partitions`` (leaf partition names) as chunks."""
        return sum(1 for n in self.nodes() if n.is_partition_scan(partitions) and n.executed)

    @property
    def columnar_scans(self) -> int:
        """Scans of columnstore chunks that ran (see :data:`COLUMNAR_PROVIDERS`)."""
        return sum(
            1
            for n in self.nodes()
            if n.raw.get("Custom Plan Provider") in COLUMNAR_PROVIDERS and n.executed
        )

    @property
    def chunks_scanned(self) -> int:
        """TimescaleDB chunks scanned (see the module's definition)."""
        return self.partitions_scanned()

    @property
    def chunks_excluded(self) -> int:
        """Chunks (or partitions) the executor excluded (see the module's definition)."""
        return sum(n.excluded_children for n in self.nodes())

    @property
    def jit_ms(self) -> float:
        timing = self.jit.get("Timing", {}) if self.jit else {}
        total = timing.get("Total")
        return (
            float(total if not isinstance(total, dict) else total.get("Total", 0.0))
            if total
            else 0.0
        )

    def worst_estimates(self, n: int = 5) -> list[tuple[PlanNode, float]]:
        scored = [(node, node.q_error) for node in self.nodes() if node.q_error is not None]
        return sorted(scored, key=lambda x: -x[1])[:n]


def _build(node: dict[str, Any], processes: int) -> PlanNode:
    workers = node.get("Workers Launched")
    child_processes = processes
    if node.get("Node Type") in ("Gather", "Gather Merge") and workers is not None:
        child_processes = int(workers) + (0 if node.get("Single Copy") else 1)
    children = [_build(c, child_processes) for c in node.get("Plans", []) or []]
    return PlanNode(
        node_type=str(node.get("Node Type", "Unknown")),
        raw={k: v for k, v in node.items() if k != "Plans"},
        children=children,
        parallel_processes=processes if node.get("Parallel Aware") or processes > 1 else 1,
    )


#: the deepest plan the kit reads: deeper ones are refused (walking, diffing and drawing recurse)
MAX_PLAN_DEPTH = 150
_TOO_DEEP = f"plan nested deeper than {MAX_PLAN_DEPTH} levels: the kit reads plans up to that depth"


def _check_depth(node: Any) -> None:
    """Refuse a plan tree deeper than :data:`MAX_PLAN_DEPTH` (walked without recursion)."""
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_PLAN_DEPTH:
            raise PlanError(_TOO_DEEP)
        children = current.get("Plans") if isinstance(current, dict) else None
        if isinstance(children, list):
            stack.extend((c, depth + 1) for c in children)


def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise PlanError(_TOO_DEEP) from None


def plan_from_json(data: Any) -> Plan:
    """A plan from EXPLAIN (FORMAT JSON) output: the list, its first element, or a bare ``Plan`` dict."""
    if isinstance(data, (str, bytes)):
        data = _loads(data)
    if isinstance(data, list):
        if not data:
            raise PlanError("empty EXPLAIN output: capture the plan again")
        data = data[0]
    if not isinstance(data, dict):
        raise PlanError(
            "not an EXPLAIN (FORMAT JSON) document: expected an object with a 'Plan' key"
        )
    if "Plan" not in data:
        if "Node Type" in data:
            data = {"Plan": data}
        else:
            raise PlanError(
                "not an EXPLAIN (FORMAT JSON) document: expected an object with a 'Plan' key"
            )
    _check_depth(data["Plan"])
    return Plan(
        root=_build(data["Plan"], 1),
        planning_ms=data.get("Planning Time"),
        execution_ms=data.get("Execution Time"),
        jit=data.get("JIT", {}) or {},
        settings=data.get("Settings", {}) or {},
        raw=data,
        query=data.get("Query Text"),
    )


# ---- text format ---------------------------------------------------------------------------------
_NODE_RE = re.compile(
    r"^(?P<indent>\s*)(?:->\s+)?(?P<desc>.+?)\s+\(cost=(?P<c0>[\d.]+)\.\.(?P<c1>[\d.]+) rows=(?P<rows>\d+) width=(?P<width>\d+)\)"
    r"(?:\s+\(actual time=(?P<t0>[\d.]+)\.\.(?P<t1>[\d.]+) rows=(?P<arows>\d+) loops=(?P<loops>\d+)\)"
    r"|\s+\(actual rows=(?P<arows2>\d+) loops=(?P<loops2>\d+)\)|\s+\((?P<never>never executed)\))?\s*$"
)
_DESC_RE = re.compile(
    r"^(?P<type>.+?)(?:\s+using\s+(?P<index>\S+))?(?:\s+on\s+(?P<rel>\S+)(?:\s+(?P<alias>\S+))?)?$"
)
_PROP_RE = re.compile(r"^\s*(?P<key>[A-Z][A-Za-z /]+?):\s*(?P<value>.*)$")


def plan_from_text(text: str) -> Plan:
    """A plan from EXPLAIN's text format (ANALYZE and BUFFERS lines understood where present)."""
    stack: list[tuple[int, dict[str, Any]]] = []
    root: dict[str, Any] | None = None
    top: dict[str, Any] = {}
    planning: dict[str, Any] = {}
    in_planning = False
    for line in _plan_lines(text):
        if line.strip() == "Planning:":  # PostgreSQL 13+: planning buffers follow, not a node's
            in_planning = True
            continue
        m = _NODE_RE.match(line)
        if m:
            node = _text_node(m)
            indent = len(m.group("indent"))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            if stack:
                stack[-1][1].setdefault("Plans", []).append(node)
            elif root is None:
                root = node
            else:
                raise PlanError("two plan roots in one text: paste one plan at a time")
            stack.append((indent, node))
            continue
        pm = _PROP_RE.match(line)
        if not pm:
            continue
        key, value = pm.group("key").strip(), pm.group("value").strip()
        if key in ("Planning Time", "Execution Time"):
            top[key] = float(value.split()[0])
            continue
        _text_property(planning if in_planning else (stack[-1][1] if stack else top), key, value)
    if root is None:
        raise PlanError(
            "no plan node found in the text: paste the output of EXPLAIN (ANALYZE, BUFFERS)"
        )
    return plan_from_json({"Plan": root, **top})


def _plan_lines(text: str) -> list[str]:
    """The lines of a text plan without blanks, rulers, the ``QUERY PLAN`` header and the
    ``(N rows)`` footer."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip() and not set(ln.strip()) <= {"-"}]
    return [
        ln
        for ln in lines
        if ln.strip() not in ("QUERY PLAN",) and not re.match(r"^\(\d+ rows?\)$", ln.strip())
    ]


#: the text format names an aggregate's strategy in its node type, JSON has a field for it
_TEXT_AGGREGATES = {
    "GroupAggregate": "Sorted",
    "HashAggregate": "Hashed",
    "MixedAggregate": "Mixed",
}


def _text_node(m: re.Match[str]) -> dict[str, Any]:
    """One node line of a text plan as the JSON format's fields (its children come later)."""
    desc = m.group("desc").strip()
    node: dict[str, Any] = {
        "Total Cost": float(m.group("c1")),
        "Startup Cost": float(m.group("c0")),
        "Plan Rows": int(m.group("rows")),
        "Plan Width": int(m.group("width")),
    }
    dm = _DESC_RE.match(desc)
    node_type = dm.group("type") if dm else desc
    custom = re.match(r"^Custom Scan \((\w+)\)$", node_type)
    if custom:
        node_type, node["Custom Plan Provider"] = "Custom Scan", custom.group(1)
    if node_type.startswith("Parallel "):
        node["Parallel Aware"] = True
        node_type = node_type[len("Parallel ") :]
    join = re.match(r"^(Hash|Merge|Nested Loop)( Left| Right| Full| Semi| Anti)? Join$", node_type)
    if join:
        node["Join Type"] = (join.group(2) or " Inner").strip()
        node_type = "Nested Loop" if join.group(1) == "Nested Loop" else f"{join.group(1)} Join"
    if node_type in _TEXT_AGGREGATES:
        node["Strategy"] = _TEXT_AGGREGATES[node_type]
        node_type = "Aggregate"
    node["Node Type"] = node_type
    if dm and dm.group("index"):
        node["Index Name"] = dm.group("index")
    if dm and dm.group("rel"):
        node["Relation Name"] = dm.group("rel").split(".")[-1]
        if dm.group("alias"):
            node["Alias"] = dm.group("alias")
    if m.group("t1") is not None:
        node.update(
            {
                "Actual Startup Time": float(m.group("t0")),
                "Actual Total Time": float(m.group("t1")),
                "Actual Rows": int(m.group("arows")),
                "Actual Loops": int(m.group("loops")),
            }
        )
    elif m.group("arows2") is not None:
        node.update({"Actual Rows": int(m.group("arows2")), "Actual Loops": int(m.group("loops2"))})
    elif m.group("never"):
        node.update({"Actual Total Time": 0.0, "Actual Rows": 0, "Actual Loops": 0})
    return node


def _text_property(target: dict[str, Any], key: str, value: str) -> None:
    """One ``Key: value`` line of a text plan into ``target`` (a node, the planning section or
    the plan's top level), as the JSON format names and types it."""
    if key == "Buffers":
        shared = re.search(r"shared ([^,]*)", value)
        for kind, num in re.findall(
            r"(hit|read|dirtied|written)=(\d+)", shared.group(1) if shared else ""
        ):
            target[f"Shared {kind.capitalize()} Blocks"] = int(num)
    elif (
        key.startswith("Rows Removed by")
        or key in ("Workers Planned", "Workers Launched", "Heap Fetches", "Subplans Removed")
        or key.startswith("Chunks excluded during")
    ):
        target[key] = int(value.split()[0])
    else:
        target[key] = value


def _is_file(source: str) -> bool:
    """Whether ``source`` names a file; pasted plan text too long for a file name does not."""
    try:
        return Path(source).is_file()
    except OSError:  # ENAMETOOLONG: a pasted plan of more than 255 characters on one line
        return False


def load_plan(source: str | Path) -> Plan:
    """A plan from a .json/.txt file path or from pasted JSON or text."""
    text: str
    if isinstance(source, Path) or (
        isinstance(source, str)
        and "\n" not in source
        and len(source) < 4096
        and source.strip() != ""
        and _is_file(source)
    ):
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise PlanError(f"cannot read plan file {path}: {exc.strerror}") from exc
    else:
        text = str(source)
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            return plan_from_json(_loads(stripped))
        except json.JSONDecodeError as exc:
            raise PlanError(
                f"plan JSON does not parse at line {exc.lineno}: paste the whole EXPLAIN output"
            ) from exc
    return plan_from_text(text)
