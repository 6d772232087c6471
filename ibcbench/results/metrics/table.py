""":data:`METRICS`: every key the notebooks, the fault suite and ``bench generate`` record, gathered
from one module per notebook; a key defined twice is refused when the table is built."""

from __future__ import annotations

from ibcbench.errors import ConfigError
from ibcbench.results.metrics import (
    data,
    faults,
    indexes,
    maintenance,
    plans,
    pool,
    replicas,
    timescale,
)
from ibcbench.results.metrics.metric import Metric

#: the tables in notebook order (01..08; ``data`` holds 01's keys and ``bench generate``'s)
TABLES: tuple[tuple[Metric, ...], ...] = (
    data.TABLE,
    indexes.TABLE,
    pool.TABLE,
    plans.TABLE,
    timescale.TABLE,
    maintenance.TABLE,
    replicas.TABLE,
    faults.TABLE,
)


def collect(tables: tuple[tuple[Metric, ...], ...]) -> dict[str, Metric]:
    """The metrics of ``tables`` by key; a key in two places is an error (one would hide the other)."""
    out: dict[str, Metric] = {}
    for table in tables:
        for metric in table:
            if metric.key in out:
                raise ConfigError(f"metric {metric.key!r} is defined twice: keep one definition")
            out[metric.key] = metric
    return out


#: every recorded key, by key
METRICS: dict[str, Metric] = collect(TABLES)
