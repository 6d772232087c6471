"""The package's import graph: no circles, and no module importing from a layer above its own.

The layers are the ones ``docs/architecture.md`` describes; every import counts, including the ones
inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ibcbench", "data_gen")

#: layer of each module or folder (longest prefix wins); a module may import lower layers and its own
#: group: its folder, or for the flat modules of ``ibcbench/`` their layer (core, infrastructure).
#: Folders of one layer (data, toolkit, plans) never import each other.
LAYERS: dict[str, int] = {
    "ibcbench": 0,  # the package root: __version__ and the lazy public names
    "ibcbench.errors": 0,
    "ibcbench.settings": 0,
    "ibcbench.server": 1,
    "ibcbench.serverauth": 1,
    "ibcbench.pidfile": 1,
    "ibcbench.db": 1,
    "ibcbench.migrate": 1,
    "ibcbench.status": 1,
    "ibcbench.topology": 1,
    "ibcbench.data": 2,
    "ibcbench.toolkit": 2,
    "ibcbench.plans": 2,
    "ibcbench.results": 3,
    "ibcbench.bench": 4,
    "ibcbench.suite": 5,
    "ibcbench.commands": 6,
    "ibcbench.cli": 7,
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
    flat = best.count(".") == 1 and not (ROOT / best.replace(".", "/")).is_dir()
    return (f"layer {layer}" if flat else best), layer


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


def test_every_folder_and_layer_is_in_the_architecture_doc() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = [k for k in LAYERS if k != "ibcbench" and f"`{k.split('.', 1)[1]}" not in doc]
    assert missing == []


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        (
            {"ibcbench.db": {"ibcbench.bench.runner"}, "ibcbench.bench.runner": set()},
            ["ibcbench.db (layer 1) -> ibcbench.bench.runner (layer 4)"],
        ),
        (
            {"ibcbench.toolkit.pool": {"ibcbench.plans.model"}, "ibcbench.plans.model": set()},
            ["ibcbench.toolkit.pool (layer 2) -> ibcbench.plans.model (layer 2)"],
        ),
        (
            {"data_gen.traffic": {"ibcbench.db"}, "ibcbench.db": set()},
            ["data_gen.traffic -> ibcbench.db (data_gen imports no ibcbench)"],
        ),
        ({"ibcbench.bench.runner": {"ibcbench.bench.workload", "ibcbench.db"}}, []),
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
