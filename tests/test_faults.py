"""The fault suite: its frame (pure), and ``ibcbench bench faults --scale tiny`` end to end.

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

from ibcbench.errors import ConfigError
from ibcbench.faults import registry
from ibcbench.faults import run as suite_run
from ibcbench.faults.lab import FaultLab
from ibcbench.faults.registry import FaultOutcome
from ibcbench.faults.run import FaultSuiteResult, run_fault_suite, suite_scale
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


def _outcome(name: str, survived: bool = True, **kw: object) -> FaultOutcome:
    return FaultOutcome("g", name, "expected", "happened", survived, **kw)  # type: ignore[arg-type]


def test_the_summary_line_counts_faults_and_bad_inputs_apart() -> None:
    result = FaultSuiteResult(
        "tiny",
        [
            _outcome("a", recovery_s=1.5),
            _outcome("b", False, rows_lost=3, recovery_s=4.0),
            _outcome("c", bad_input=True),
            _outcome("d", False, bad_input=True),
        ],
        1.0,
    )
    assert result.summary_line() == (
        "faults: 2 injected, 1 survived, 3 rows lost, 1 bad inputs rejected (of 2)"
    )
    assert not result.ok
    assert result.longest_recovery().fault == "b"  # type: ignore[union-attr]
    numbers = result.key_numbers()
    assert numbers["faults_injected"] == 2 and numbers["faults_survived"] == 1
    assert numbers["faults_bad_inputs_rejected"] == 1 and numbers["faults_rows_lost"] == 3
    assert list(result.frame.verdict) == ["survived", "FAILED", "survived", "FAILED"]
    assert "FAILED" in result.table()


def test_unknown_scales_and_names_are_refused_before_any_cluster_starts() -> None:
    with pytest.raises(ConfigError, match="scale 'huge' is unknown"):
        run_fault_suite("huge")
    with pytest.raises(ConfigError, match="no fault or group named nope"):
        run_fault_suite("tiny", only=["nope"])
    assert suite_scale("tiny") == "tiny" and suite_scale("default") == "small"


def test_every_group_of_the_issue_has_a_registered_fault() -> None:
    registered = registry.registered_faults()
    assert {f.group for f in registered} >= GROUPS
    assert {f.group for f in registered if f.fast} >= GROUPS, "tiny must cover every group"
    assert len({f.name for f in registered}) == len(registered)


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
