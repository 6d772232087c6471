"""The workload's analytics on the standby against the primary, and the service's lookups on the
primary alone and while the standby serves the analytics (:func:`compare_analytics`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from ibcbench.bench.replicas.members import (
    ANALYTICS,
    SERVICE,
    ReplicaSetup,
    ReplicasNotAvailable,
    wait_caught_up,
)
from ibcbench.bench.workload import default_workload, sample_parameters
from ibcbench.bench.workload.python import run_python
from ibcbench.db import connect
from ibcbench.results.metrics.metric import THROUGHPUT, TIMING, Metric
from ibcbench.results.recorded import save_frame


@dataclass(frozen=True)
class AnalyticsResult:
    frame: (
        pd.DataFrame
    )  # target, workload, query, count, errors, throughput_qps, p50_ms, p95_ms, p99_ms
    clients: int
    duration_s: float

    def _all(self, target: str) -> pd.Series:
        return self.frame[(self.frame.target == target) & (self.frame["query"] == "ALL")].iloc[0]

    def save(self, run_dir: Any) -> None:
        save_frame(self.frame, "replica_analytics", run_dir)

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        *(
            Metric(
                f"analytics_{t}_{p}_ms",
                "lower",
                "ms",
                TIMING,
                0.05,
                note=f"the analytics mix on the {t}",
            )
            for t in ("primary", "standby")
            for p in ("p50", "p95")
        ),
        Metric(
            "analytics_standby_over_primary_p50",
            "none",
            "",
            note="standby p50 / primary p50 (1: the same)",
        ),
        Metric(
            "service_p95_ms_alone",
            "lower",
            "ms",
            TIMING,
            0.05,
            note="the service mix on the primary alone",
        ),
        Metric(
            "service_p95_ms_standby_busy",
            "lower",
            "ms",
            TIMING,
            0.05,
            note="the service mix while the standby runs the analytics (same machine: shared CPUs)",
        ),
        Metric("service_qps_alone", "higher", "queries/s", THROUGHPUT),
        Metric("service_qps_standby_busy", "higher", "queries/s", THROUGHPUT),
        Metric("analytics_errors", "lower", "errors", note="0 expected"),
    )

    def key_numbers(self) -> dict[str, Any]:
        a_p, a_s = self._all("analytics on primary"), self._all("analytics on standby")
        s_alone, s_busy = (
            self._all("service on primary"),
            self._all("service on primary, standby busy"),
        )
        return {
            "analytics_primary_p50_ms": float(a_p.p50_ms),
            "analytics_standby_p50_ms": float(a_s.p50_ms),
            "analytics_primary_p95_ms": float(a_p.p95_ms),
            "analytics_standby_p95_ms": float(a_s.p95_ms),
            "analytics_standby_over_primary_p50": round(float(a_s.p50_ms) / float(a_p.p50_ms), 3)
            if float(a_p.p50_ms)
            else None,
            "service_p95_ms_alone": float(s_alone.p95_ms),
            "service_p95_ms_standby_busy": float(s_busy.p95_ms),
            "service_qps_alone": float(s_alone.throughput_qps),
            "service_qps_standby_busy": float(s_busy.throughput_qps),
            "analytics_errors": int(a_s.errors) + int(a_p.errors),
        }


def compare_analytics(
    setup: ReplicaSetup,
    *,
    clients: int = 2,
    duration_s: float = 5.0,
    warmup_s: float = 1.0,
    seed: int = 42,
) -> AnalyticsResult | ReplicasNotAvailable:
    """The analytics mix on the primary, then on the standby; the service mix on the primary alone,
    then while the standby runs the analytics mix (on a shared machine they share its CPUs too)."""
    if setup.skipped is not None:
        return setup.skipped
    wl = default_workload()
    analytics, service = wl.subset(ANALYTICS), wl.subset(SERVICE)
    with connect(setup.dsn) as conn:
        a_params = sample_parameters(conn, analytics, seed=seed)
        s_params = sample_parameters(conn, service, seed=seed)
    wait_caught_up(setup.dsn, setup.replica_dsn)
    kw: dict[str, Any] = {
        "clients": clients,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "seed": seed,
    }
    frames = []

    def tag(result: Any, target: str, workload: str) -> None:
        s = result.summary.copy()
        s.insert(0, "target", target)
        s.insert(1, "workload", workload)
        frames.append(s)

    tag(
        run_python(setup.dsn, analytics, params=a_params, **kw), "analytics on primary", "analytics"
    )
    tag(
        run_python(setup.replica_dsn, analytics, params=a_params, **kw),
        "analytics on standby",
        "analytics",
    )
    tag(run_python(setup.dsn, service, params=s_params, **kw), "service on primary", "service")
    busy: list[Any] = []
    background = threading.Thread(
        target=lambda: busy.append(
            run_python(
                setup.replica_dsn,
                analytics,
                params=a_params,
                clients=clients,
                duration_s=duration_s + 2 * warmup_s + 1.0,
                warmup_s=0.0,
                seed=seed,
            )
        ),
        daemon=True,
    )
    background.start()
    time.sleep(0.5)
    tag(
        run_python(setup.dsn, service, params=s_params, **kw),
        "service on primary, standby busy",
        "service",
    )
    background.join()
    if busy:
        tag(busy[0], "analytics on standby, service busy", "analytics")
    cols = [
        "target",
        "workload",
        "query",
        "count",
        "errors",
        "throughput_qps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    ]
    return AnalyticsResult(pd.concat(frames, ignore_index=True)[cols], clients, duration_s)
