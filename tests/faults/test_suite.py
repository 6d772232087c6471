"""The fault suite on a database: a fault that breaks, and ``ibcbench bench faults --scale tiny``
end to end.

The end-to-end test runs every fast fault on a cluster of the suite's own, as a user types the
command, and asserts what its output must show: every group in the table, every fault
survived, 0 rows lost, every bad input rejected, and nothing left behind (no cluster, no workdir).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from ibcbench.faults import registry
from ibcbench.faults import run as suite_run
from ibcbench.faults.lab import FaultLab
from ibcbench.faults.registry import FaultOutcome
from ibcbench.faults.run import run_fault_suite
from tests.conftest import BackgroundCommand

#: every fault group of the suite (ibcbench.faults.cases) must be in the tiny suite's table
GROUPS = {
    "load",
    "server",
    "schema",
    "concurrency",
    "safety",
    "disk",
    "inputs",
    "dataset",
    "security",
    "cache",
}
SUMMARY_RE = re.compile(
    r"^faults: (\d+) injected, (\d+) survived, (\d+) rows lost, (\d+) bad inputs rejected$"
)


@pytest.mark.db
def test_a_fault_that_breaks_counts_as_failed_and_the_lab_is_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Path] = {}

    def broken(lab: FaultLab) -> FaultOutcome:
        seen["workdir"] = lab.workdir
        lab.new_database("broken_fault")
        raise RuntimeError("the injection went wrong")

    monkeypatch.setattr(
        suite_run, "registered_faults", lambda: [registry.Fault("broken", "test", True, broken)]
    )
    result = run_fault_suite("tiny", progress=None)
    assert [o.verdict for o in result.outcomes] == ["FAILED"]
    assert "RuntimeError: the injection went wrong" in result.outcomes[0].happened
    assert not seen["workdir"].exists()


@pytest.mark.db
def test_bench_faults_tiny_every_fault_survives(fault_suite_tiny: BackgroundCommand) -> None:
    # started when collection ended, on a cluster of its own, beside the other tests (conftest.py)
    returncode, stdout, stderr = fault_suite_tiny.wait(timeout=1200)
    lines = stdout.strip().splitlines()
    assert lines, stderr
    match = SUMMARY_RE.match(lines[-1])
    assert match, f"last line {lines[-1]!r}\n{stdout}\n{stderr}"
    injected, survived, lost, rejected = map(int, match.groups())
    assert returncode == 0, stdout
    assert injected > 0 and survived == injected and lost == 0 and rejected > 0
    (run,) = fault_suite_tiny.runs_dir.iterdir()
    table = pd.read_csv(run / "results" / "faults.csv")
    assert set(table.group) >= GROUPS, set(table.group)
    assert (table.verdict == "survived").all(), table[table.verdict != "survived"]
    assert int(table.bad_input.sum()) == rejected
    assert len(table) == injected + rejected
    # the suite removed its cluster and folders: no server of its own is left running
    (workdir,) = re.findall(r"^the suite's cluster and folders: (\S+) \(removed\)$", stdout, re.M)
    assert not Path(workdir).exists()
    assert workdir not in subprocess.run(["ps", "axww"], capture_output=True, text=True).stdout
