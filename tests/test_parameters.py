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
