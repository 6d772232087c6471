"""Recorded metrics: which way is better, in what unit, and how much change is noise.

Every key a notebook records (:func:`ibcbench.results.recorded.record`) has a :class:`Metric`
with its better direction (``higher``, ``lower``, or ``none`` for informational values such as row
counts of the generated data), its unit, and a noise threshold: a change counts only when it is
beyond both the relative threshold, a factor either way (x1.25: above x1.25 or below x0.8, so a
throughput halving and a latency doubling weigh the same), and the absolute one (in the unit).
A baseline of 0 has no relative change, so only the absolute threshold applies there: ``errors``
going from 0 to 4 is a regression. A key missing from the table is reported as "not compared (no
direction known)", never guessed from its name.

The thresholds of timings are wide because they were measured so: on the 2-core machine the kit is
built on, shared with other jobs (load average 6 to 8), five identical tiny-scale runs of notebook
02 moved an index lookup's p50 up to x1.7, a sequential scan's p50 up to x4.4, their ratio (the
speed-up) up to x5.0 and a 5,000-row insert rate up to x4.8 (``docs/report-check.md``). A dropped
index moves its query's p50 by x40 and more, far beyond them. On a quiet runner, tighten them.

:func:`compare_recorded` compares two runs' recorded values, notebook by notebook (``diff``), by
the table it is given. Each metric is declared beside the ``key_numbers()`` that makes its key (a
result class's ``METRICS``, or a module's for a value a notebook records itself);
:func:`ibcbench.metrics.all_metrics` gathers them into the table (``table.collect`` refuses a key
defined twice); ``metric`` holds :class:`Metric` and the thresholds below.
"""

from __future__ import annotations

from ibcbench.results.metrics.diff import MetricDiff, compare_recorded, compare_value
from ibcbench.results.metrics.metric import (
    ESTIMATE,
    LOOKUP,
    RATIO,
    THROUGHPUT,
    TIMING,
    Better,
    Metric,
    Verdict,
)
from ibcbench.results.metrics.table import collect

__all__ = [
    "ESTIMATE",
    "LOOKUP",
    "RATIO",
    "THROUGHPUT",
    "TIMING",
    "Better",
    "Metric",
    "MetricDiff",
    "Verdict",
    "collect",
    "compare_recorded",
    "compare_value",
]
