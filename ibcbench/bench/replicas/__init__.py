"""Read replicas measured the way the service would run them (notebook 07).

- :func:`measure_load_lag`: replication lag, sampled every ``interval_s`` (100 ms by default), while
  the generator loads a span into a scratch database of the primary; peak, p95, time to catch up.
- :func:`compare_analytics`: the workload's analytics queries on the standby against the primary,
  and the service's lookups on the primary alone and while the standby serves the analytics.
- :func:`measure_recovery_conflicts`: queries cancelled on the standby (``canceling statement due to
  conflict with recovery``) while the primary deletes and vacuums, with ``hot_standby_feedback`` off
  and on, and what feedback costs the primary (dead tuples it may not remove, table size).
- :func:`restart_standby_during_run`: the runner keeps going on the primary while a standby restarts;
  reads routed by :class:`~ibcbench.toolkit.routing.RoutedPool` fall back to the primary.

:func:`start_replicas` gives the members: external ones by URL (``replica_dsn``/``REPLICA_URL``,
``pgbouncer_dsn``/``PGBOUNCER_URL``), else a standby (and PgBouncer) of the embedded server behind
``dsn``, started for this run and removed by :meth:`ReplicaSetup.stop` (or, if the run is killed, by
the next ``ibcbench db up``). With neither (a server that is not the kit's embedded one, no standby
given), each measurement returns the setup's :class:`ReplicasNotAvailable`, which says why. Scratch
objects live in the kit's schema ``ibcbench_replicas`` of the dataset database and in the kit's
database ``ibcbench_replicas_scratch``; both are dropped at the end.

The package: ``members`` (the setup and the standby's replay position), ``lag``, ``analytics``,
``conflicts`` and ``restart``, one measurement each.
"""

from __future__ import annotations

from ibcbench.bench.replicas.analytics import AnalyticsResult, compare_analytics
from ibcbench.bench.replicas.conflicts import ConflictResult, measure_recovery_conflicts
from ibcbench.bench.replicas.lag import SCRATCH_DATABASE, LagResult, measure_load_lag, plot_lag
from ibcbench.bench.replicas.members import (
    ANALYTICS,
    CONFLICT_MESSAGE,
    SCHEMA,
    SERVICE,
    ReplicaSetup,
    ReplicasNotAvailable,
    start_replicas,
    wait_caught_up,
)
from ibcbench.bench.replicas.restart import RestartResult, restart_standby_during_run

__all__ = [
    "ANALYTICS",
    "CONFLICT_MESSAGE",
    "SCHEMA",
    "SCRATCH_DATABASE",
    "SERVICE",
    "AnalyticsResult",
    "ConflictResult",
    "LagResult",
    "ReplicaSetup",
    "ReplicasNotAvailable",
    "RestartResult",
    "compare_analytics",
    "measure_load_lag",
    "measure_recovery_conflicts",
    "plot_lag",
    "restart_standby_during_run",
    "start_replicas",
    "wait_caught_up",
]
