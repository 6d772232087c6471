"""TimescaleDB's columnstore (compression) on copies of packet_flow: ratio, queries, ingest, DML, policy.

The seed wants "a column store for analytics". This measures what the columnstore gives and costs on
the dataset's own packets, for several ``segmentby``/``orderby`` settings that the workload argues for:

- ``by_source_chain`` (segmentby ``source_chain``): the per-chain analytics (hourly stats, counts);
- ``by_channel`` (segmentby ``source_chain, source_channel``, orderby ``sequence``): the relayers'
  channel + sequence lookups;
- ``by_sender`` (segmentby ``sender``): wallet history.

Each setting gets its own hypertable copy in the kit's schema ``ibcbench_columnstore`` (the same chunk
interval, the service's indexes), every chunk but the newest converted to the columnstore; a copy left in
the rowstore is the baseline. Measured: bytes before and after per chunk and in total, the workload's
analytics and point queries (latency through :func:`ibcbench.bench.timing.time_query`, buffers and the
plan's columnar scan nodes through :mod:`ibcbench.plans.model`), ingest into a hypertable whose older
chunks are compressed (and a backfill into a compressed chunk), an UPDATE and a DELETE of a compressed
row, and a columnstore policy seen running as a job. The schema is dropped at the end: the dataset is
never changed. The columnstore needs the Community edition; under the Apache edition the result has
the same frames, empty, and says why.

The package: ``copies`` (the settings, the copies and their conversion), ``queries`` (timing a query
on a copy), ``rounds`` (ingest and DML), ``result`` (:class:`ColumnstoreResult`, the recommendation,
the figure) and ``benchmark`` (:func:`benchmark_columnstore`, phase by phase).
"""

from __future__ import annotations

from ibcbench.bench.columnstore.benchmark import benchmark_columnstore
from ibcbench.bench.columnstore.copies import BASELINE, SCHEMA, SETTINGS
from ibcbench.bench.columnstore.queries import QUERIES
from ibcbench.bench.columnstore.result import ColumnstoreResult, plot_columnstore

__all__ = [
    "BASELINE",
    "QUERIES",
    "SCHEMA",
    "SETTINGS",
    "ColumnstoreResult",
    "benchmark_columnstore",
    "plot_columnstore",
]
