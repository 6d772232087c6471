"""The workload and its two engines.

- :mod:`~ibcbench.bench.workload.queries`: the service's query patterns as a named, versioned
  workload, with parameters sampled from the data (its names are importable from this package too);
- :mod:`~ibcbench.bench.workload.python`: the Python runner, threads over a psycopg_pool (the
  question is the client pool); its client threads in :mod:`~ibcbench.bench.workload.clients`,
  each request's tries in :mod:`~ibcbench.bench.workload.tries`;
- :mod:`~ibcbench.bench.workload.pgbench`: pgbench (the question is the server), its scripts,
  password file and logs;
- :mod:`~ibcbench.bench.workload.summary`: the result and the per-query summary both engines make
  of their per-request records; :mod:`~ibcbench.bench.workload.cron`: the pg_cron jobs paused while
  either measures;
- :mod:`~ibcbench.bench.workload.engines`: one call for either engine (``run_workload``), and the
  same query through both (``run_fidelity``).
"""

from ibcbench.bench.workload.queries import (
    PACKET_COLUMNS,
    QUERIES,
    WORKLOAD_NAME,
    WORKLOAD_VERSION,
    Workload,
    WorkloadQuery,
    default_workload,
    sample_parameters,
    workload_queries,
)

__all__ = [
    "PACKET_COLUMNS",
    "QUERIES",
    "WORKLOAD_NAME",
    "WORKLOAD_VERSION",
    "Workload",
    "WorkloadQuery",
    "default_workload",
    "sample_parameters",
    "workload_queries",
]
