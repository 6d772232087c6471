"""Plans recorded from the test server (tests/fixtures/plans), for the plans library's tests."""

from __future__ import annotations

import json
from pathlib import Path

from ibcbench.plans import Plan, load_plan

FIXTURES = Path(__file__).parent.parent / "fixtures" / "plans"
ALL = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".json", ".txt"))


def fixture(name: str) -> Plan:
    """One recorded plan, parsed."""
    return load_plan(FIXTURES / name)


def timed(ms: float) -> Plan:
    """The hash join fixture with its execution time set to ``ms``."""
    raw = json.loads((FIXTURES / "hash_join.json").read_text())
    raw[0]["Execution Time"] = ms
    return load_plan(json.dumps(raw))
