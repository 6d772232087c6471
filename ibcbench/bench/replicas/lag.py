"""Replication lag while the generator loads a span into a scratch database of the primary
(:func:`measure_load_lag`): sampled every ``interval_s``, peak, p95, time to catch up."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from ibcbench.bench.replicas.members import (
    ReplicaSetup,
    ReplicasNotAvailable,
    standby_lag,
    wait_caught_up,
)
from ibcbench.db import connect
from ibcbench.dsn import with_database
from ibcbench.errors import BenchmarkError
from ibcbench.results.metrics.metric import TIMING, Metric, informational
from ibcbench.results.recorded import save_frame
from ibcbench.toolkit.routing import parse_lsn

SCRATCH_DATABASE = "ibcbench_replicas_scratch"
_SCRATCH_MARKER = "ibcbench_replicas_scratch_marker"
_SAMPLE_COLUMNS = ["t_s", "lag_bytes", "lag_s", "replay_lag_s", "phase"]


@dataclass(frozen=True)
class LagResult:
    samples: pd.DataFrame  # t_s, lag_bytes, lag_s, replay_lag_s, phase
    load_s: float
    rows_loaded: int
    catch_up_s: float
    interval_s: float
    scale: str

    def save(self, run_dir: Any) -> None:
        save_frame(self.samples, "replica_lag", run_dir)

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        Metric(
            "lag_peak_bytes",
            "lower",
            "bytes",
            TIMING,
            1e6,
            note="WAL the standby had not replayed, at worst",
        ),
        Metric(
            "lag_p95_bytes",
            "lower",
            "bytes",
            TIMING,
            1e6,
            note="WAL not replayed, 95th percentile of the samples",
        ),
        Metric(
            "lag_peak_s",
            "lower",
            "s",
            TIMING,
            0.1,
            note="replay_lag (pg_stat_replication) at worst during the load",
        ),
        Metric("lag_p95_s", "lower", "s", TIMING, 0.1, note="replay_lag, 95th percentile"),
        Metric(
            "staleness_peak_s",
            "none",
            "s",
            note="age of the newest commit the standby showed: the load's length",
        ),
        Metric(
            "lag_catch_up_s",
            "lower",
            "s",
            TIMING,
            0.1,
            note="from the load's commit until the standby replayed it",
        ),
        Metric(
            "lag_load_s", "lower", "s", TIMING, note="the load itself, while the standby streamed"
        ),
        informational("lag_samples", "samples", "how many lag samples were taken"),
        informational("lag_sample_interval_ms", "ms", "the median interval between lag samples"),
    )

    def key_numbers(self) -> dict[str, Any]:
        during = self.samples[self.samples.phase != "before"]
        replay = during.replay_lag_s.astype(float).dropna()
        return {
            "lag_peak_bytes": int(during.lag_bytes.max()) if len(during) else 0,
            "lag_p95_bytes": int(np.percentile(during.lag_bytes, 95)) if len(during) else 0,
            # seconds: pg_stat_replication.replay_lag, how long WAL takes to be replayed
            "lag_peak_s": round(float(replay.max()), 3) if len(replay) else None,
            "lag_p95_s": round(float(np.percentile(replay, 95)), 3) if len(replay) else None,
            # the standby's view: age of its newest replayed commit (grows through a long transaction)
            "staleness_peak_s": round(float(during.lag_s.max()), 3) if len(during) else 0.0,
            "lag_catch_up_s": round(self.catch_up_s, 3),
            "lag_load_s": round(self.load_s, 2),
            "lag_samples": len(self.samples),
            "lag_sample_interval_ms": round(1000 * float(np.median(np.diff(self.samples.t_s))), 1)
            if len(self.samples) > 1
            else None,
        }


def scratch_database(primary: str) -> str:
    """A fresh kit-owned database on the primary (one the kit did not create is refused)."""
    with connect(primary, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (SCRATCH_DATABASE,)
        ).fetchone()
        target = with_database(primary, SCRATCH_DATABASE)
        if exists:
            with connect(target, autocommit=True) as old:
                ours = old.execute("SELECT to_regclass(%s)", (_SCRATCH_MARKER,)).fetchone()[0]  # type: ignore[index]
            if ours is None:
                raise BenchmarkError(
                    f"database {SCRATCH_DATABASE!r} exists but is not the kit's: drop or rename it"
                )
            conn.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DATABASE))
            )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SCRATCH_DATABASE)))
    with connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} ()").format(sql.Identifier(_SCRATCH_MARKER)))
    return target


def drop_scratch(primary: str) -> None:
    """Drop the scratch database (with its connections)."""
    with connect(primary, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(SCRATCH_DATABASE)
            )
        )


def measure_load_lag(
    setup: ReplicaSetup,
    *,
    scale: str = "tiny",
    seed: int = 42,
    interval_s: float = 0.1,
    timeout_s: float = 600.0,
) -> LagResult | ReplicasNotAvailable:
    """Lag sampled every ``interval_s`` while the generator loads ``scale`` into a scratch database."""
    if setup.skipped is not None:
        return setup.skipped
    from data_gen import GenerationParams
    from ibcbench.data.load import load_dataset
    from ibcbench.infra.migrate import migrate_up

    if not 0.005 <= interval_s <= 0.1:
        raise BenchmarkError("interval_s must be between 0.005 and 0.1 (100 ms or finer)")
    primary = setup.dsn
    scratch = scratch_database(primary)
    try:
        migrate_up(scratch)
        wait_caught_up(primary, setup.replica_dsn)
        sampler = _LagSampler(primary, setup.replica_dsn, interval_s)
        sampler.start()
        time.sleep(max(0.3, 3 * interval_s))
        sampler.phase = "load"
        started = time.perf_counter()
        loaded = load_dataset(scratch, GenerationParams(seed=seed, scale=scale), quiet=True)
        load_s = time.perf_counter() - started
        sampler.phase = "catch-up"
        _wait_replayed(primary, setup.replica_dsn, started=started, timeout_s=timeout_s)
        catch_up_s = time.perf_counter() - started - load_s
        sampler.phase = "after"
        time.sleep(max(0.3, 3 * interval_s))
        frame = sampler.stop()
    finally:
        drop_scratch(primary)
    return LagResult(frame, load_s, int(loaded.rows), catch_up_s, interval_s, scale)


class _LagSampler:
    """A thread that samples the lag every ``interval_s`` until :meth:`stop`, each sample tagged with
    the phase set at that moment."""

    def __init__(self, primary: str, replica: str, interval_s: float) -> None:
        self.primary, self.replica, self.interval_s = primary, replica, interval_s
        self.phase = "before"
        self._rows: list[tuple[float, int, float, float | None, str]] = []
        self._stop = threading.Event()
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> pd.DataFrame:
        """Stop sampling; the samples, or the sampler's failure raised."""
        self._stop.set()
        self._thread.join()
        if self._failure:
            raise BenchmarkError(f"the lag sampler failed: {self._failure[0]}") from self._failure[
                0
            ]
        return pd.DataFrame(self._rows, columns=_SAMPLE_COLUMNS)

    def _run(self) -> None:
        try:
            with (
                psycopg.connect(self.primary, autocommit=True) as p,
                psycopg.connect(self.replica, autocommit=True) as r,
            ):
                t0 = time.perf_counter()
                nxt = t0
                while not self._stop.is_set():
                    cur, rl = p.execute(
                        "SELECT pg_current_wal_lsn()::text, (SELECT extract(epoch FROM max(replay_lag))::float8"
                        " FROM pg_stat_replication)"
                    ).fetchone()  # type: ignore[misc]
                    replay, lag_s = standby_lag(r)
                    self._rows.append(
                        (
                            time.perf_counter() - t0,
                            max(0, parse_lsn(cur) - replay),
                            lag_s,
                            rl,
                            self.phase,
                        )
                    )
                    nxt += self.interval_s
                    delay = nxt - time.perf_counter()
                    if delay > 0:
                        self._stop.wait(delay)
        except BaseException as exc:  # surfaced after the load
            self._failure.append(exc)


def _wait_replayed(primary: str, replica: str, *, started: float, timeout_s: float) -> None:
    """Wait until the standby replayed the primary's WAL position of now; ``timeout_s`` counts from
    ``started`` (the load's start)."""
    with psycopg.connect(primary, autocommit=True) as p:
        goal = parse_lsn(p.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]
    with psycopg.connect(replica, autocommit=True) as r:
        while standby_lag(r)[0] < goal:
            if time.perf_counter() - started > timeout_s:
                raise BenchmarkError(
                    f"the standby did not catch up within {timeout_s:g} s of the load"
                )
            time.sleep(0.005)


def plot_lag(result: LagResult | ReplicasNotAvailable) -> Any:
    """Lag in MB of WAL, replay_lag in seconds and the standby's staleness against time; the load
    shaded orange, the catch-up green (no standby: a figure that says why)."""
    import matplotlib.pyplot as plt

    if isinstance(result, ReplicasNotAvailable):
        fig = plt.figure(figsize=(11, 1.2))
        fig.suptitle(f"Replication lag: {result.text}", fontsize=10, wrap=True)
        return fig

    f = result.samples
    fig, axes = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True)
    axes[0].plot(f.t_s, f.lag_bytes / 1e6, lw=1.0)
    axes[0].set_ylabel("WAL not replayed (MB)")
    axes[1].plot(f.t_s, f.replay_lag_s.astype(float), lw=1.0, color="tab:red")
    axes[1].set_ylabel("replay_lag (s)")
    axes[2].plot(f.t_s, f.lag_s, lw=1.0, color="tab:grey")
    axes[2].set_ylabel("newest commit\nseen on standby (s old)")
    axes[2].set_xlabel("seconds")
    load = f[f.phase == "load"]
    catch = f[f.phase == "catch-up"]
    for ax in axes:
        if len(load):
            ax.axvspan(load.t_s.min(), load.t_s.max(), color="tab:orange", alpha=0.15, lw=0)
        if len(catch):
            ax.axvspan(catch.t_s.min(), catch.t_s.max(), color="tab:green", alpha=0.3, lw=0)
    k = result.key_numbers()
    seconds = f", replay_lag p95 {k['lag_p95_s']:.2f} s" if k["lag_p95_s"] is not None else ""
    fig.suptitle(
        f"Replication lag while {result.rows_loaded:,} rows load ({result.scale}, one transaction):"
        f" peak {k['lag_peak_bytes'] / 1e6:.1f} MB, p95 {k['lag_p95_bytes'] / 1e6:.1f} MB{seconds};"
        f" caught up {k['lag_catch_up_s']:.2f} s after the commit",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
