"""Each recorded key's metric lives beside the ``key_numbers()`` that makes it (``METRICS``), and
:func:`ibcbench.metrics.all_metrics` gathers them.

Pure checks: the gathered table is the one the kit had before the metrics moved (the recorded
fixture ``fixtures/metrics_before.json``), a key defined twice is refused, and every result class
is listed, frozen and saves. Real results at tiny scale: every key a result makes has a metric in
its class, and its class names no key it never makes (but its ``optional`` ones).
:func:`assert_metrics_declared` is what the tests of each benchmark call on the results they build.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import ibcbench.bench
import ibcbench.data
import ibcbench.faults
from ibcbench.bench import maintenance as m
from ibcbench.bench import timescale as ts
from ibcbench.bench.ab import ABResult
from ibcbench.bench.cache import CacheResult
from ibcbench.bench.explain import (
    PlanComparisonResult,
    PlanConfig,
    RandomPageCostResult,
    compare_configurations,
    compare_random_page_cost,
)
from ibcbench.bench.indexes import benchmark_index_strategies
from ibcbench.bench.poolsweep import sweep_pool_settings
from ibcbench.data.profile import profile_dataset
from ibcbench.errors import ConfigError
from ibcbench.metrics import RECORDED_BESIDE, RESULTS, all_metrics
from ibcbench.results.metrics import Metric, collect

FIXTURE = Path(__file__).parent / "fixtures" / "metrics_before.json"


def assert_metrics_declared(result: Any, *, also: Iterable[type] = ()) -> None:
    """Every key ``result.key_numbers()`` makes has a metric in its class's ``METRICS`` (or in the
    classes ``also`` names, whose key numbers it records too); every metric of its class that is
    not ``optional`` names a key it made; and its class is in :data:`ibcbench.metrics.RESULTS`."""
    cls = type(result)
    assert cls in RESULTS, f"{cls.__name__} is not in ibcbench.metrics.RESULTS"
    made = set(result.key_numbers())
    declared = {metric.key for metric in cls.METRICS}
    borrowed = {metric.key for other in also for metric in other.METRICS}  # type: ignore[attr-defined]
    assert sorted(made - declared - borrowed) == [], f"{cls.__name__}: keys without a metric"
    required = {metric.key for metric in cls.METRICS if not metric.optional}
    assert sorted(required - made) == [], f"{cls.__name__}: metrics of keys it did not make"


# ---- the table, pure --------------------------------------------------------------------------


#: keys added after the fixture was recorded (the report's findings, ibcbench ab, bench cache)
ADDED_SINCE = {
    "knee_clients",
    "health_window_days",
    "cagg_policy_error",
    "columnstore_policy_error",
    "pgbouncer",
    "replicas",
    *(m.key for m in ABResult.METRICS),
    *(m.key for m in CacheResult.METRICS),
}


def test_all_metrics_is_the_table_as_it_was() -> None:
    """The move changed no key, direction, unit, threshold or note."""
    before = json.loads(FIXTURE.read_text())
    now = {
        key: {
            "better": metric.better,
            "unit": metric.unit,
            "noise_rel": metric.noise_rel,
            "noise_abs": metric.noise_abs,
            "note": metric.note,
        }
        for key, metric in all_metrics().items()
    }
    assert sorted(set(before) - set(now)) == []
    assert sorted(set(now) - set(before) - ADDED_SINCE) == []
    assert {k: v for k, v in now.items() if k in before and before[k] != v} == {}


def test_a_key_defined_twice_is_refused() -> None:
    tables = [cls.METRICS for cls in RESULTS] + list(RECORDED_BESIDE)
    assert len(all_metrics()) == sum(len(t) for t in tables)
    assert all(isinstance(metric, Metric) for t in tables for metric in t)
    twice = (Metric("errors", "lower"),)
    with pytest.raises(ConfigError, match="metric 'errors' is defined twice: keep one definition"):
        collect([*tables, twice])


def _classes_with_key_numbers() -> dict[type, str]:
    """Every class of ``bench/``, ``data/`` and ``faults/`` that defines ``key_numbers``, by its module."""
    found: dict[type, str] = {}
    for package in (ibcbench.bench, ibcbench.data, ibcbench.faults):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == module.__name__ and "key_numbers" in vars(cls):
                    found[cls] = module.__name__
    return found


def test_every_result_class_is_listed() -> None:
    """A new result with key numbers cannot leave the table behind."""
    found = _classes_with_key_numbers()
    assert sorted(c.__name__ for c in set(found) - set(RESULTS)) == []
    assert sorted(c.__name__ for c in set(RESULTS) - set(found)) == []


def test_every_bench_result_is_a_frozen_dataclass_with_save() -> None:
    """``docs/architecture.md``: a benchmark returns a frozen ``...Result`` that writes what the
    report reads with ``save(run_dir)``."""
    bench = [
        c
        for c, module in _classes_with_key_numbers().items()
        if module.startswith("ibcbench.bench")
    ]
    assert len(bench) >= 19
    not_frozen = [
        c.__name__
        for c in bench
        if not dataclasses.is_dataclass(c) or not c.__dataclass_params__.frozen  # type: ignore[attr-defined]
    ]
    assert not_frozen == []
    assert [c.__name__ for c in bench if not callable(getattr(c, "save", None))] == []


# ---- real results at tiny scale ---------------------------------------------------------------


@pytest.mark.db
def test_index_strategy_metrics(loaded_dsn: str) -> None:
    result = benchmark_index_strategies(
        loaded_dsn,
        strategies=("none", "service"),
        queries=("wallet_history", "packet_by_channel_sequence"),
        repetitions=3,
        ingest_rows=200,
    )
    assert_metrics_declared(result)


@pytest.mark.db
def test_pool_sweep_metrics(loaded_dsn: str) -> None:
    result = sweep_pool_settings(
        loaded_dsn,
        max_sizes=(1, 2),
        clients=(1,),
        prepared=(True, False),
        duration_s=0.2,
        warmup_s=0.05,
    )
    assert_metrics_declared(result)


@pytest.mark.db
def test_timescale_metrics(loaded_dsn: str) -> None:
    assert_metrics_declared(
        ts.benchmark_layouts(loaded_dsn, chunk_intervals=("1 day",), repetitions=1)
    )
    assert_metrics_declared(ts.benchmark_rollups(loaded_dsn, new_packets=100, repetitions=1))
    assert_metrics_declared(ts.benchmark_retention(loaded_dsn, keep_hours=6))


@pytest.mark.db
def test_maintenance_metrics(loaded_dsn: str) -> None:
    assert_metrics_declared(m.demonstrate_bloat(loaded_dsn, delete_share=0.6, lookups=3))
    assert_metrics_declared(m.check_monitoring(loaded_dsn))


@pytest.mark.db
def test_plan_comparison_metrics(loaded_dsn: str) -> None:
    queries = [("stuck", "SELECT count(*) FROM clearing_operations WHERE status = %s", ("stuck",))]
    diff = compare_configurations(
        loaded_dsn, PlanConfig("none", "none"), PlanConfig("service", "service"), queries=queries
    )
    rpc = compare_random_page_cost(loaded_dsn, ["4", "1.1"])
    assert_metrics_declared(rpc)
    assert_metrics_declared(PlanComparisonResult(diff), also=[RandomPageCostResult])
    assert_metrics_declared(PlanComparisonResult(diff, rpc.diff), also=[RandomPageCostResult])


@pytest.mark.db
def test_profile_metrics(loaded_dsn: str) -> None:
    assert_metrics_declared(profile_dataset(loaded_dsn))


@pytest.mark.db
def test_dataset_metrics(server_dsn: str) -> None:
    from ibcbench.data.datasets import ensure_dataset_info

    assert_metrics_declared(ensure_dataset_info(server_dsn, scale="tiny", seed=42))  # reused
