"""Index strategies: apply them, measure them, and compare HypoPG's prediction with the measurement.

A strategy is a set of the kit's secondary indexes. ``apply_strategy`` makes the database hold exactly
that set (of the kit's index names; nothing else is touched): CREATE INDEX CONCURRENTLY on plain
tables; hypertables refuse CONCURRENTLY, so there TimescaleDB's ``transaction_per_chunk`` build is
used, which also avoids holding one lock over every chunk. Primary keys, unique constraints and
TimescaleDB's default ``created_at`` index stay in every strategy.

The package: ``strategies`` (the index sets, :func:`apply_strategy`), ``benchmark``
(:func:`benchmark_index_strategies`) and ``result`` (:class:`IndexStrategyResult`, the figures).
"""

from __future__ import annotations

from ibcbench.bench.indexes.benchmark import READ_QUERIES, benchmark_index_strategies
from ibcbench.bench.indexes.result import IndexStrategyResult, plot_cost, plot_latency
from ibcbench.bench.indexes.strategies import (
    KIT_INDEXES,
    STRATEGIES,
    ApplyResult,
    IndexDef,
    IndexStrategy,
    apply_strategy,
    describe_strategies,
    index_size,
    present_kit_indexes,
)

__all__ = [
    "KIT_INDEXES",
    "READ_QUERIES",
    "STRATEGIES",
    "ApplyResult",
    "IndexDef",
    "IndexStrategy",
    "IndexStrategyResult",
    "apply_strategy",
    "benchmark_index_strategies",
    "describe_strategies",
    "index_size",
    "plot_cost",
    "plot_latency",
    "present_kit_indexes",
]
