"""Notebook parameter checks (ibcbench.suite.parameters), pure: values people pass that must pass."""

from __future__ import annotations

import pytest

from ibcbench.suite.parameters import validate_parameters


@pytest.mark.parametrize(
    ("notebook", "parameters"),
    [
        # a plan configuration without an index strategy keeps the dataset's indexes (the fault
        # suite's notebook_restart compares two random_page_cost settings so)
        (
            "04_query_plans.ipynb",
            {
                "config_a": {
                    "name": "rpc_4",
                    "index_strategy": None,
                    "settings": {"random_page_cost": "4"},
                },
                "config_b": {"name": "rpc_1.1", "index_strategy": None, "settings": {}},
            },
        ),
        ("04_query_plans.ipynb", {"config_a": {"name": "a", "index_strategy": "service"}}),
    ],
)
def test_notebook_parameters_that_pass(notebook: str, parameters: dict) -> None:
    validate_parameters(notebook, parameters)


def test_run_all_runs_the_benchmarks_not_the_fault_suite_unless_named() -> None:
    from ibcbench.commands.run import _chosen_notebooks
    from ibcbench.suite.parameters import validate_run_all

    default = [p.name for p in validate_run_all("tiny", 42)]
    assert default[0] == "01_generate_and_load.ipynb" and "07_replicas.ipynb" in default
    assert "08_faults.ipynb" not in default
    named = validate_run_all("tiny", 42, notebooks=_chosen_notebooks("04,08"))
    assert [p.name for p in named] == ["04_query_plans.ipynb", "08_faults.ipynb"]
