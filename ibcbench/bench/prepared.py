"""Prepared statements through PgBouncer's transaction pooling: where the service's statement
cache breaks. pgbench ``-M prepared`` through it (:func:`pgbench_prepared`), and psycopg
connections preparing a lookup after a threshold of executions
(:func:`prepared_statements_through_pgbouncer`). Split from :mod:`ibcbench.bench.pgbouncer`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pandas as pd
import psycopg

from ibcbench.bench.workload import Workload, default_workload, sample_parameters
from ibcbench.bench.workload.pgbench import run_pgbench
from ibcbench.errors import BenchmarkError


def pgbench_prepared(
    url: str, wl: Workload, params: dict[str, list[tuple]], seed: int
) -> pd.DataFrame:
    """pgbench -M prepared through transaction pooling: does it survive?"""
    one = wl.subset(["packet_by_channel_sequence"])
    try:
        r = run_pgbench(
            url,
            one,
            clients=8,
            duration_s=1.0,
            warmup_s=0.0,
            params=params,
            seed=seed,
            protocol="prepared",
        )
        total = r.summary.set_index("query").loc["ALL"]
        errors, ok, messages = int(total.errors), int(total["count"]), []
    except BenchmarkError as exc:
        errors, ok, messages = 1, 0, [str(exc)]
    return pd.DataFrame(
        [
            {
                "client": "pgbench -M prepared",
                "prepare_threshold": "prepared",
                "clients": 8,
                "executions": ok + errors,
                "errors": errors,
                "qps": np.nan,
                "messages": messages,
            }
        ]
    )


def prepared_statements_through_pgbouncer(
    url: str,
    *,
    clients: int = 8,
    executions: int = 50,
    thresholds: tuple[int | None, ...] = (5, None),
    seed: int = 42,
) -> pd.DataFrame:
    """``clients`` psycopg connections through PgBouncer (``url``), each running one lookup
    ``executions`` times, per ``prepare_threshold``: errors by message, and queries/s."""
    wl = default_workload().subset(["packet_by_channel_sequence"])
    q = wl.queries[0]
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        values = sample_parameters(conn, wl, n=50, seed=seed)[q.name]
    rows = []
    for threshold in thresholds:
        errors: Counter[str] = Counter()
        done = [0] * clients
        lock = threading.Lock()

        def work(
            i: int,
            threshold: int | None = threshold,
            errors: Counter[str] = errors,
            done: list[int] = done,
            lock: threading.Lock = lock,
        ) -> None:
            with psycopg.connect(url, autocommit=True, prepare_threshold=threshold) as conn:
                for k in range(executions):
                    try:
                        conn.execute(q.sql, values[(i + k) % len(values)]).fetchall()
                        done[i] += 1
                    except psycopg.Error as exc:
                        text = (
                            str(exc).strip().splitlines()[0]
                            if str(exc).strip()
                            else type(exc).__name__
                        )
                        with lock:
                            errors[text] += 1

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        rows.append(
            {
                "client": "psycopg",
                "prepare_threshold": str(threshold),
                "clients": clients,
                "executions": clients * executions,
                "errors": sum(errors.values()),
                "qps": round(sum(done) / elapsed, 1),
                "messages": [f"{n} x {m}" for m, n in errors.most_common(3)],
            }
        )
    return pd.DataFrame(rows)
