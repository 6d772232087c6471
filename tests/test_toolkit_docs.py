"""The seed's data-access examples in docs/toolkit.md, run as written there (in order, one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "toolkit.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_the_doc_holds_one_example_per_seed_example() -> None:
    blocks = python_blocks(DOC.read_text())
    used = [
        name
        for name in ("PoolConfig", "QueryBuilder", "on_conflict", "QueryCache")
        if any(name in b for b in blocks)
    ]
    assert used == ["PoolConfig", "QueryBuilder", "on_conflict", "QueryCache"]


@pytest.mark.db
def test_the_toolkit_examples_run_as_written(
    make_database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ibcbench.infra.migrate import migrate_up

    dsn = make_database("toolkit_docs")
    migrate_up(dsn)
    monkeypatch.setenv("DATABASE_URL", dsn)
    namespace: dict[str, object] = {}
    for i, block in enumerate(python_blocks(DOC.read_text())):
        exec(compile(block, f"{DOC.name}[python block {i + 1}]", "exec"), namespace)
    pool = namespace["pool"]
    assert pool.closed  # the last example closes the pool it opened
