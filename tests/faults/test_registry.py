"""The fault registry: registering a fault, refusing a name twice, finding every group module."""

from __future__ import annotations

import pytest

from ibcbench.faults import registry
from ibcbench.faults.registry import Fault, FaultOutcome, fault, registered_faults

#: the group modules of ibcbench.faults.cases, and the group each registers its faults under
GROUP_MODULES = {
    "concurrency": "concurrency",
    "dataset": "dataset",
    "disk": "disk",
    "inputs": "inputs",
    "load": "load",
    "safety": "safety",
    "schema": "schema",
    "security_access": "security",
    "security_inputs": "security",
    "security_secrets": "security",
    "cache": "cache",
    "server": "server",
}


@pytest.fixture
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Fault]:
    fresh: dict[str, Fault] = {}
    monkeypatch.setattr(registry, "_REGISTRY", fresh)
    return fresh


def _outcome(lab: object) -> FaultOutcome:
    return FaultOutcome("g", "x", "expected", "happened", True)


def test_fault_registers_under_its_name_without_the_prefix(
    empty_registry: dict[str, Fault],
) -> None:
    def fault_lost_disk(lab: object) -> FaultOutcome:
        return _outcome(lab)

    def slow_one(lab: object) -> FaultOutcome:
        return _outcome(lab)

    assert fault("disk")(fault_lost_disk) is fault_lost_disk
    fault("server", fast=False)(slow_one)
    assert list(empty_registry) == ["lost_disk", "slow_one"]
    assert empty_registry["lost_disk"] == Fault("lost_disk", "disk", True, fault_lost_disk)
    assert empty_registry["slow_one"] == Fault("slow_one", "server", False, slow_one)


def test_a_name_registered_twice_is_refused(empty_registry: dict[str, Fault]) -> None:
    def fault_twice(lab: object) -> FaultOutcome:
        return _outcome(lab)

    def twice(lab: object) -> FaultOutcome:  # the same name once the prefix goes
        return _outcome(lab)

    fault("load")(fault_twice)
    with pytest.raises(ValueError, match="^fault 'twice' is registered twice$"):
        fault("disk")(twice)
    assert empty_registry["twice"].group == "load"


def test_registered_faults_imports_every_group_module_of_cases() -> None:
    faults = registered_faults()
    modules = {f.run.__module__.rsplit(".", 1)[-1]: f.group for f in faults}
    assert modules == GROUP_MODULES
    names = {f.name: f.group for f in faults}
    assert len(names) == len(faults)
    # one fault of each module this layout split into phases, by its registered name
    assert names["load_disk_full"] == "disk"
    assert names["load_sigint"] == "load"
    assert names["notebook_restart"] == "server"
    assert names["destructive_commands_on_user_database"] == "safety"
    assert names["dataset_half_built"] == "dataset"
    # tiny runs the fast faults only: every group must still be there
    assert {f.group for f in faults if f.fast} == set(GROUP_MODULES.values())
