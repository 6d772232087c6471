"""Every recorded key's metric (direction, unit, noise), gathered from where each key is made.

A benchmark result declares the metrics of its ``key_numbers()`` beside it, as ``METRICS``; a value
a notebook records itself (``record_results(..., compression=...)``) has its metric in the module
that computes it. :func:`all_metrics` reads them from the explicit lists below, in notebook order,
and refuses a key defined twice. The compare functions of ``results/`` and the report take the
table as an argument: ``compare_recorded(a, b, metrics=all_metrics())``.

This module sits beside ``commands/`` (the layer above ``faults/``): it names the fault suite's
result as well as the benchmarks', and ``faults/`` imports ``suite/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

from ibcbench.bench.ab import ABResult
from ibcbench.bench.cache import CacheResult
from ibcbench.bench.columnstore import ColumnstoreResult
from ibcbench.bench.explain import PlanComparisonResult, RandomPageCostResult
from ibcbench.bench.generation import GenerationResult
from ibcbench.bench.incidents import MonitorScoreResult
from ibcbench.bench.indexes import IndexStrategyResult
from ibcbench.bench.maintenance import BloatResult, CronJobsResult, MonitoringResult
from ibcbench.bench.pgbouncer import ConnectionPathsResult
from ibcbench.bench.poolcapacity import PoolCapacityResult
from ibcbench.bench.poolsweep import PoolSweepResult
from ibcbench.bench.replicas import (
    AnalyticsResult,
    ConflictResult,
    LagResult,
    ReplicasNotAvailable,
    RestartResult,
)
from ibcbench.bench.timescale import LayoutResult, RetentionResult, RollupResult
from ibcbench.bench.timescale import shared as timescale_shared
from ibcbench.data.datasets import DatasetInfo
from ibcbench.data.profile import DatasetProfile
from ibcbench.faults.run import FaultSuiteResult
from ibcbench.results.metrics import Metric, collect


class DeclaresMetrics(Protocol):
    """A result class: its key numbers, and the metric of each key they make."""

    METRICS: ClassVar[tuple[Metric, ...]]

    def key_numbers(self) -> dict[str, Any]: ...


#: every class whose ``key_numbers()`` a notebook or command records, in notebook order (01..08;
#: ``GenerationResult`` is ``ibcbench bench generate``'s)
RESULTS: tuple[type[DeclaresMetrics], ...] = (
    DatasetInfo,
    DatasetProfile,
    GenerationResult,
    IndexStrategyResult,
    PoolSweepResult,
    PoolCapacityResult,
    ConnectionPathsResult,
    PlanComparisonResult,
    RandomPageCostResult,
    LayoutResult,
    RollupResult,
    ColumnstoreResult,
    RetentionResult,
    CronJobsResult,
    BloatResult,
    MonitoringResult,
    MonitorScoreResult,
    LagResult,
    AnalyticsResult,
    ConflictResult,
    RestartResult,
    ReplicasNotAvailable,
    FaultSuiteResult,
    # commands of their own, no notebook: ibcbench ab, ibcbench bench cache
    ABResult,
    CacheResult,
)

#: the metrics of values a notebook records beside its results, by the module that makes them
RECORDED_BESIDE: tuple[tuple[Metric, ...], ...] = (timescale_shared.METRICS,)


def all_metrics() -> Mapping[str, Metric]:
    """Every recorded key's :class:`Metric`, by key (read-only); a key defined twice is a
    :class:`~ibcbench.errors.ConfigError` naming it."""
    tables = [cls.METRICS for cls in RESULTS] + list(RECORDED_BESIDE)
    return MappingProxyType(collect(tables))
