"""A notebook's time budget and the widest interval it reported (ibcbench.suite.budget), pure."""

from __future__ import annotations

import pandas as pd

from ibcbench.suite.budget import time_parameters, widest_interval
from ibcbench.suite.parameters import notebook_parameters


def test_time_parameters_are_the_seconds_repetitions_and_rounds_as_given() -> None:
    defaults = notebook_parameters("07_replicas.ipynb")
    got = time_parameters(defaults, {"duration_s": 3.0})
    assert got is not None
    assert got["duration_s"] == 3.0 and got["lag_interval_s"] == 0.1
    assert got["conflict_rounds"] == 2 and "clients" not in got and "conflict_rows" not in got
    assert time_parameters(notebook_parameters("02_index_strategies.ipynb"), {}) == {
        "repetitions": 100
    }
    assert time_parameters(notebook_parameters("01_generate_and_load.ipynb"), {}) is None


def test_the_widest_interval_of_recorded_values_and_result_tables() -> None:
    recorded = {"p50_ms": 10.0, "p50_ci_low_ms": 9.5, "p50_ci_high_ms": 10.5, "x_ci_low": 1.0}
    table = pd.DataFrame(
        [
            {"query": "wallet", "p50_ms": 2.0, "p50_ci_low_ms": 1.0, "p50_ci_high_ms": 3.0},
            {"query": "route", "p50_ms": 4.0, "p50_ci_low_ms": None, "p50_ci_high_ms": None},
        ]
    )
    assert widest_interval(recorded, {}) == {
        "source": "recorded",
        "value": "p50_ms",
        "low": 9.5,
        "high": 10.5,
        "relative_width": 0.1,
    }
    got = widest_interval(recorded, {"index_timings": table})
    assert got is not None
    assert (got["source"], got["where"], got["relative_width"]) == (
        "results/index_timings",
        "wallet",
        1.0,
    )
    # no point value: relative to the interval's middle; no interval at all: None
    assert widest_interval({"r_ci_low": 1.0, "r_ci_high": 3.0}, {})["relative_width"] == 1.0  # type: ignore[index]
    assert widest_interval({"p50_ms": 1.0}, {"t": pd.DataFrame({"a": [1]})}) is None
