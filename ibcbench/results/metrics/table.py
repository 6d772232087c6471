"""The table of every recorded key, built from the metrics each result declares beside its
``key_numbers()``; a key defined twice is refused when the table is built.

Which results and modules make up the table is :func:`ibcbench.metrics.all_metrics`'s list; the
compare functions take the table as an argument (``results/`` imports no benchmark).
"""

from __future__ import annotations

from collections.abc import Iterable

from ibcbench.errors import ConfigError
from ibcbench.results.metrics.metric import Metric


def collect(tables: Iterable[Iterable[Metric]]) -> dict[str, Metric]:
    """The metrics of ``tables`` by key; a key in two places is an error (one would hide the other)."""
    out: dict[str, Metric] = {}
    for table in tables:
        for metric in table:
            if metric.key in out:
                raise ConfigError(f"metric {metric.key!r} is defined twice: keep one definition")
            out[metric.key] = metric
    return out
