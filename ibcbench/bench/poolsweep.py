"""Pool settings swept: max_size x client threads x prepared statements (x health check).

Each point runs the read mix through the Python runner with a pool of that shape; pool statistics
(time waiting for a connection vs using it, errors, timeouts) come from psycopg_pool, over the
measured window only (not the warm-up, nor the pool's growth before it), and every request's wait
and execution are recorded, so their p50/p95/p99 are reported apart. This is the client's
question, so the runner's CPU share is reported with every point.

The pool's min_size is by default what the seed's pgx service runs (``MinConns`` 5, or max_size if
smaller: a pgx pool opens more connections on demand up to ``MaxConns``); ``fixed_size=(True,)``
sweeps ``min_size = max_size`` instead (every connection open before the first request), and
``(False, True)`` both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Any

import pandas as pd

from ibcbench.bench.runner import run_python
from ibcbench.bench.workload import default_workload, sample_parameters
from ibcbench.db import connect, resolve_dsn
from ibcbench.toolkit.pool import PoolConfig

SEED_CONFIG = PoolConfig()  # 25 / 5


@dataclass
class PoolSweepResult:
    frame: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def knee(
        self, *, clients: int | None = None, prepared: bool = True, share: float = 0.95
    ) -> int:
        """Smallest max_size reaching ``share`` of the best throughput at ``clients`` (default: the most)."""
        f = self.frame[self.frame.prepared == prepared]
        c = clients or int(f.clients.max())
        f = f[f.clients == c].groupby("max_size").throughput_qps.mean()
        return int(f[f >= share * f.max()].index.min())

    def save(self, run: Any) -> None:
        run.write_frame("pool_sweep", self.frame)
        run.update_manifest(pool_sweep=self.manifest)


def sweep_pool_settings(
    dsn: str | None,
    *,
    max_sizes: tuple[int, ...] = (1, 2, 4, 8, 25),
    clients: tuple[int, ...] = (1, 4, 16, 32),
    prepared: tuple[bool, ...] = (True, False),
    health_check: tuple[bool, ...] = (False,),
    fixed_size: tuple[bool, ...] = (False,),
    duration_s: float = 3.0,
    warmup_s: float = 0.5,
    seed: int = 42,
) -> PoolSweepResult:
    target = resolve_dsn(dsn)
    wl = (
        default_workload()
        .subset(kind="read")
        .subset(
            [
                "wallet_history",
                "wallet_by_status",
                "packet_by_channel_sequence",
                "network_stats_range",
                "user_statistics",
            ]
        )
    )
    with connect(target) as conn:
        params = sample_parameters(conn, wl, seed=seed)
    rows = []
    for size, n, prep, health, fixed in product(
        max_sizes, clients, prepared, health_check, fixed_size
    ):
        cfg = PoolConfig(
            min_size=size if fixed else min(size, SEED_CONFIG.min_size), max_size=size,
            prepare_threshold=5 if prep else None,
            health_check_period_s=1.0 if health else None, check_on_checkout=health, slow_query_ms=None,
            timeout_s=10.0,
        )  # fmt: skip
        result = run_python(target, wl, clients=n, duration_s=duration_s, warmup_s=warmup_s, pool_config=cfg,
                            params=params, seed=seed)  # fmt: skip
        total = result.summary.set_index("query").loc["ALL"]
        stats = result.pool_stats or {}
        requests = max(1, stats.get("requests", 1))
        rows.append({
            "max_size": size, "min_size": cfg.min_size, "fixed_size": fixed, "clients": n, "prepared": prep, "health_check": health,
            "throughput_qps": float(total.throughput_qps), "p50_ms": float(total.p50_ms),
            "p95_ms": float(total.p95_ms), "p99_ms": float(total.p99_ms), "errors": int(total.errors),
            "wait_ms_per_request": round(stats.get("wait_ms", 0.0) / requests, 4),
            "use_ms_per_request": round(stats.get("usage_ms", 0.0) / requests, 4),
            "queued_pct": round(100.0 * stats.get("requests_queued", 0) / requests, 1),
            **{f"{part}_p{p}_ms": float(total[f"{part}_p{p}_ms"]) for part in ("wait", "exec") for p in (50, 95, 99)},
            "timeouts": int(stats.get("request_errors", 0)), "client_cpu_pct": result.client_cpu_pct,
            "client_floor_share": result.client_floor_share,
            "client_bound": result.client_bound, "seed_config": size == SEED_CONFIG.max_size,
        })  # fmt: skip
    return PoolSweepResult(
        pd.DataFrame(rows),
        {"max_sizes": list(max_sizes), "clients": list(clients), "prepared": list(prepared),
         "health_check": list(health_check), "fixed_size": list(fixed_size), "duration_s": duration_s,
         "min_size": f"max_size if fixed, else min(max_size, {SEED_CONFIG.min_size}) (the seed's pgx MinConns)",
         "pool_stats": "over the measured window", "workload": wl.names},
    )  # fmt: skip


def plot_sweep(result: PoolSweepResult) -> Any:
    """Throughput and p95 against client threads, one line per max_size; the seed's 25/5 drawn bold."""
    import matplotlib.pyplot as plt

    f = result.frame
    if "fixed_size" in f.columns and f.fixed_size.nunique() > 1:
        f = f[~f.fixed_size]  # the default pools; the fixed ones are in the frame
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    sizes = sorted(f.max_size.unique())
    colour = {size: plt.cm.tab10(i % 10) for i, size in enumerate(sizes)}
    for prep, style in ((True, "-"), (False, ":")):
        for size, g in f[(f.prepared == prep) & (~f.health_check)].groupby("max_size"):
            g = g.sort_values("clients")
            bold = size == SEED_CONFIG.max_size
            kw = {"marker": "o", "lw": 3 if bold else 1.2, "color": colour[size]}
            label = f"max {size}{' (seed 25/5)' if bold else ''}{'' if prep else ', unprepared'}"
            axes[0].plot(g.clients, g.throughput_qps, style, label=label, **kw)
            axes[1].plot(g.clients, g.p95_ms, style, **kw)
            axes[2].plot(g.clients, g.wait_ms_per_request, style, **kw)
    axes[0].set_title("Throughput (queries/s)")
    axes[1].set_title("p95 latency (ms)")
    axes[2].set_title("Wait for a connection (ms / request)")
    for ax in axes:
        ax.set_xlabel("client threads")
        ax.set_xscale("log", base=2)
    # one legend under the panels: colour = max_size, solid = prepared statements, dotted = not
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, max(1, len(labels))), fontsize=8,
               frameon=False)  # fmt: skip
    rows = -(-len(labels) // 6)
    knee = result.knee()
    fig.suptitle(f"Pool sweep: throughput stops growing at max_size = {knee} (95% of the best)")
    fig.tight_layout(rect=(0, 0.05 * rows + 0.02, 1, 1))
    return fig
