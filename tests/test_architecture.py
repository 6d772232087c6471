"""The package's import graph: no circles, and no module importing from a layer above its own.

The layers are the ones ``docs/architecture.md`` describes; every import counts, including the ones
inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ibcbench", "data_gen")

DOC = ROOT / "docs" / "architecture.md"
_ROW_RE = re.compile(r"^\|\s*(\d+)\s*\|([^|]*)\|([^|]*)\|\s*$")


def doc_layers(text: str) -> dict[str, int]:
    """The layer table of ``docs/architecture.md``: module or folder -> layer.

    A row is ``| N | `name`, `folder/`, ... | what it may import |``; ``__init__`` is the package
    root. The test below holds the code to this table, so the doc is the one place the layers live.
    """
    layers: dict[str, int] = {}
    for line in text.splitlines():
        match = _ROW_RE.match(line)
        if not match:
            continue
        layer = int(match.group(1))
        for token in re.findall(r"`([^`]+)`", match.group(2)):
            name = (
                "ibcbench"
                if token == "__init__"
                else "ibcbench." + token.strip("/").replace("/", ".")
            )
            layers[name] = layer
    return layers


def doc_reach(text: str) -> dict[str, int]:
    """The "may import" column of the same table: module or folder -> the highest layer it may
    import (``layers 0–N`` or ``layer N``; "nothing of the kit" is -1; otherwise the layer below)."""
    reach: dict[str, int] = {}
    for line in text.splitlines():
        match = _ROW_RE.match(line)
        if not match:
            continue
        layer, rule = int(match.group(1)), match.group(3)
        found = re.search(r"layers? (?:\d+\s*[–-]\s*)?(\d+)", rule)
        top = int(found.group(1)) if found else (-1 if "nothing" in rule else layer - 1)
        for name in doc_layers(line):
            reach[name] = top
    return reach


#: layer of each module or folder (longest prefix wins); a module may import lower layers and its own
#: group: its folder, or for the flat modules of ``ibcbench/`` their layer (core, infrastructure).
#: Folders of one layer never import each other.
LAYERS: dict[str, int] = doc_layers(DOC.read_text())
#: the highest layer each may import, from the same table
REACH: dict[str, int] = doc_reach(DOC.read_text())
#: layers whose rows name flat modules (core, infrastructure): a folder there is a flat module grown
#: into a package (``migrate/``) and one group with them
FLAT_LAYERS: set[int] = {
    layer
    for name, layer in LAYERS.items()
    if name.count(".") == 1 and not (ROOT / name.replace(".", "/")).is_dir()
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """First-party modules ``path`` imports: ``from a import b`` is ``a.b`` where that is a module,
    else ``a``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[
                    : len(name.split(".")) - node.level + (1 if is_package else 0)
                ]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != name}


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: imports_of(path, name, set(modules)) for name, path in modules.items()}


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def group(name: str) -> tuple[str, int]:
    """The group ``name`` belongs to (its folder, or the layer of a flat module), and its layer."""
    best = max((k for k in LAYERS if name == k or name.startswith(k + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{name} has no layer: add it to LAYERS and docs/architecture.md")
    layer = LAYERS[best]
    flat = best.count(".") == 1 and (
        layer in FLAT_LAYERS or not (ROOT / best.replace(".", "/")).is_dir()
    )
    return (f"layer {layer}" if flat else best), layer


def reach(name: str) -> int:
    """The highest layer ``name`` may import (the doc's "may import" column of its row)."""
    best = max((k for k in REACH if name == k or name.startswith(k + ".")), key=len)
    return REACH[best]


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in edges.items():
        if src.startswith("data_gen"):
            bad += [
                f"{src} -> {t} (data_gen imports no ibcbench)"
                for t in targets
                if t.startswith("ibcbench")
            ]
            continue
        src_group, src_layer = group(src)
        for t in targets:
            if t.startswith("data_gen"):
                continue
            t_group, t_layer = group(t)
            if t_group == src_group or t_group == "ibcbench":
                continue
            if t_layer >= src_layer:
                bad.append(f"{src} (layer {src_layer}) -> {t} (layer {t_layer})")
            elif t_layer > reach(src):
                bad.append(f"{src} (may import up to layer {reach(src)}) -> {t} (layer {t_layer})")
    return sorted(bad)


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_circles() -> None:
    assert circles(graph(all_modules())) == []


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    assert layer_violations(graph(all_modules())) == []


def test_the_doc_names_every_module_and_folder_of_the_package() -> None:
    """Every flat module and folder of ``ibcbench/`` has a row in the doc's layer table, and every
    row names something that exists: a new module or a move cannot leave the doc behind."""
    package = ROOT / "ibcbench"
    on_disk = {"ibcbench"} | {
        f"ibcbench.{p.stem if p.is_file() else p.name}"
        for p in package.iterdir()
        if (p.is_file() and p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert sorted(on_disk - set(LAYERS)) == [], "add them to the table in docs/architecture.md"
    nested = {n for n in set(LAYERS) - on_disk if n.count(".") > 1}  # a module a row sets apart
    assert sorted(set(LAYERS) - on_disk - nested) == [], "the doc names modules that do not exist"
    assert sorted(n for n in nested if not _exists(n)) == [], (
        "the doc names modules that do not exist"
    )


def _exists(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_the_doc_picture_names_every_folder() -> None:
    """The folder picture at the top of the doc names each folder of ``ibcbench/`` as ``name/``."""
    text = DOC.read_text()
    picture = text.split("```")[1]
    folders = {
        p.name for p in (ROOT / "ibcbench").iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    assert sorted(f for f in folders if f"{f}/" not in picture) == []


def test_doc_layers_reads_the_table() -> None:
    text = (
        "| layer | group | may import |\n|---:|---|---|\n| 0 | `errors`, `__init__` | nothing |\n"
    )
    text += "| 3 | `bench/`, `bench/workload/` | layers 0–2 |\n"
    assert doc_layers(text) == {
        "ibcbench.errors": 0,
        "ibcbench": 0,
        "ibcbench.bench": 3,
        "ibcbench.bench.workload": 3,
    }


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        (
            {
                "ibcbench.db": {"ibcbench.bench.workload.python"},
                "ibcbench.bench.workload.python": set(),
            },
            ["ibcbench.db (layer 1) -> ibcbench.bench.workload.python (layer 4)"],
        ),
        (
            {"ibcbench.toolkit.pool": {"ibcbench.plans.model"}, "ibcbench.plans.model": set()},
            ["ibcbench.toolkit.pool (layer 2) -> ibcbench.plans.model (layer 2)"],
        ),
        (
            {"data_gen.traffic": {"ibcbench.db"}, "ibcbench.db": set()},
            ["data_gen.traffic -> ibcbench.db (data_gen imports no ibcbench)"],
        ),
        ({"ibcbench.bench.workload.python": {"ibcbench.bench.workload", "ibcbench.db"}}, []),
        (
            {
                "ibcbench.infra.migrate.apply": {"ibcbench.db"},
                "ibcbench.infra.status": {"ibcbench.infra.migrate"},
            },
            [],
        ),
        (
            {"ibcbench.results.runs": {"ibcbench.data.load"}, "ibcbench.data.load": set()},
            ["ibcbench.results.runs (may import up to layer 1) -> ibcbench.data.load (layer 2)"],
        ),
    ],
)
def test_layer_rules_catch_an_upward_or_sideways_import(edges, expected) -> None:
    assert layer_violations(edges) == expected


def test_circles_are_found_through_lazy_imports(tmp_path: Path) -> None:
    (tmp_path / "ibcbench").mkdir()
    a = tmp_path / "ibcbench" / "a.py"
    a.write_text("import ibcbench.errors\n\ndef f():\n    from ibcbench import b\n")
    assert imports_of(a, "ibcbench.a", {"ibcbench.a", "ibcbench.b", "ibcbench.errors"}) == {
        "ibcbench.b",
        "ibcbench.errors",
    }
    assert circles({"ibcbench.a": {"ibcbench.b"}, "ibcbench.b": {"ibcbench.a"}}) == [
        ["ibcbench.a", "ibcbench.b"]
    ]
