"""The Python runner's client threads: each draws its requests from the mix, sends them (closed
loop, or open loop on its own schedule) and keeps the measured ones; :func:`measure` runs them over
one pool and takes the window's figures around them."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from psycopg import sql

from ibcbench.bench.workload.queries import Workload
from ibcbench.bench.workload.tries import round_trip_qps, try_request, window_pool_stats

_DRAWS = 1 << 16  # random draws made up front per client thread


class Record(NamedTuple):
    """One measured request: its query's index, times in ms, ``t_s`` its start from the window's
    start, and how many tries it took."""

    query: int
    latency_ms: float
    ok: bool
    t_s: float
    lag_ms: float
    wait_ms: float
    exec_ms: float
    tries: int
    client: int = 0


@dataclass(frozen=True)
class Settings:
    """One run's settings, as :func:`~ibcbench.bench.workload.python.run_python` checked them."""

    clients: int
    duration_s: float
    warmup_s: float
    rate_qps: float | None
    seed: int
    max_tries: int
    drain_s: float


@dataclass(frozen=True)
class Mix:
    """The workload as the client threads draw from it."""

    names: list[str]
    weights: np.ndarray
    queries: list[sql.SQL]
    writes: list[bool]
    params: dict[str, list[tuple]]

    @classmethod
    def of(cls, workload: Workload, params: dict[str, list[tuple]]) -> Mix:
        weights = np.array([q.weight for q in workload.queries], dtype=float)
        weights /= weights.sum()
        return cls(
            workload.names,
            weights,
            [sql.SQL(q.sql) for q in workload.queries],
            [q.kind == "write" for q in workload.queries],
            params,
        )


class Draws(NamedTuple):
    """One client's requests drawn up front: the query of each, the parameter set it takes (an
    index into that query's sets) and, in an open loop, the first request's start in intervals
    from the run's start. The pgx runner is given the same draws (its requests follow the Python
    runner's, client for client)."""

    picks: list[int]
    slots: list[int]
    offset: float


def client_draws(mix: Mix, seed: int, idx: int) -> Draws:
    """Client ``idx``'s draws for a run seeded ``seed`` (the sequence wraps after ``_DRAWS``)."""
    rng = np.random.default_rng([seed, idx])
    picks = rng.choice(len(mix.names), size=_DRAWS, p=mix.weights).tolist()
    slots = rng.integers(0, 1 << 30, size=_DRAWS).tolist()
    sizes = [len(mix.params[n]) for n in mix.names]
    return Draws(picks, [s % sizes[i] for i, s in zip(picks, slots, strict=True)], rng.random())


@dataclass(frozen=True)
class _Window:
    """The run's clock (``time.perf_counter``): its start, the measured window, the open loop's
    drain, and the time after which no try starts."""

    start: float
    measure_from: float
    stop_at: float
    drain_until: float
    retry_until: float

    @classmethod
    def starting_now(cls, run: Settings) -> _Window:
        start = time.perf_counter()
        measure_from = start + run.warmup_s
        stop_at = measure_from + run.duration_s
        drain_until = stop_at + run.drain_s
        # no try starts after this: the window's end, or the drain's in an open loop
        return cls(
            start, measure_from, stop_at, drain_until, drain_until if run.rate_qps else stop_at
        )


class _Client:
    """One client thread: draws its requests, sends them (closed loop, or open loop on its own
    schedule) and keeps the measured ones in its own ``records``."""

    def __init__(self, idx: int, pool: Any, mix: Mix, window: _Window, run: Settings) -> None:
        self.idx, self.pool, self.mix, self.window, self.run = idx, pool, mix, window, run
        self.records: list[Record] = []
        #: open loop: requests scheduled within the window that the drain's end left unsent
        self.not_issued = 0

    def __call__(self) -> None:
        mix, w = self.mix, self.window
        # draws made up front, so the loop spends its time on the database
        picks, slots, offset = client_draws(mix, self.run.seed, self.idx)
        param_lists = [mix.params[n] for n in mix.names]
        k = 0
        rate_qps = self.run.rate_qps
        interval = self.run.clients / rate_qps if rate_qps else 0.0
        scheduled = w.start + offset * interval
        while True:
            now = time.perf_counter()
            if interval:
                if scheduled >= w.stop_at:
                    return
                if now >= w.drain_until:  # the backlog left: scheduled, never sent
                    first = max(scheduled, w.measure_from)
                    self.not_issued = int(-(-(w.stop_at - first) // interval))
                    return
                if scheduled > now:
                    time.sleep(scheduled - now)
                began = scheduled  # open loop: latency counts from the intended start
                scheduled += interval
            elif now >= w.stop_at:
                return
            else:
                began = now
            i = picks[k % _DRAWS]
            values = param_lists[i][slots[k % _DRAWS]]
            k += 1
            record = self._send(i, values, began, open_loop=bool(interval))
            if record is not None:
                self.records.append(record)

    def _send(self, i: int, values: tuple, began: float, *, open_loop: bool) -> Record | None:
        """Send one request; its record when it counts (None: outside the measured window)."""
        w = self.window
        ok, tries = try_request(
            self.pool,
            self.mix.queries[i],
            values,
            self.mix.writes[i],
            self.run.max_tries,
            w.retry_until,
        )
        sent, got, done = tries.sent, tries.got, tries.done
        ended = time.perf_counter()
        troubled = not ok or tries.count > 1
        if began < w.measure_from or not (open_loop or ended <= w.stop_at or troubled):
            return None
        return Record(
            i,
            (ended - began) * 1000.0,
            ok,
            began - w.measure_from,
            (sent - began) * 1000.0,
            (got - sent) * 1000.0,
            (done - got) * 1000.0,
            tries.count,
            self.idx,
        )


class _WindowStart:
    """Waits for the measured window to begin, then notes the process's CPU time and the pool's
    counters (the window's figures are taken from there)."""

    def __init__(self, pool: Any, measure_from: float) -> None:
        self.pool, self.measure_from = pool, measure_from
        self.cpu_s = 0.0
        self.pool_stats: dict[str, Any] = {}

    def __call__(self) -> None:
        delay = self.measure_from - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self.cpu_s = time.process_time()
        self.pool_stats = self.pool.stats().as_dict()


@dataclass(frozen=True)
class Measured:
    """What the client threads measured, and the figures taken around them."""

    records: list[Record]  # in order of their start
    not_issued: int
    cpu_used_s: float
    pool_stats: dict[str, Any]
    disturbed: bool
    floor_qps: float | None
    #: the measured window's start, seconds since the epoch
    window_epoch_s: float


def measure(pool: Any, mix: Mix, run: Settings) -> Measured:
    """Run the client threads over ``pool`` for the warm-up and the window (and the drain), then,
    for an undisturbed closed loop, the round-trip floor."""
    window = _Window.starting_now(run)
    window_epoch_s = time.time() + run.warmup_s
    marker = _WindowStart(pool, window.measure_from)
    clients = [_Client(i, pool, mix, window, run) for i in range(run.clients)]
    marker_thread = threading.Thread(target=marker)
    threads = [threading.Thread(target=c, daemon=True) for c in clients]
    marker_thread.start()
    for t in threads:
        t.start()
    marker_thread.join()
    for t in threads:
        t.join()
    cpu_used = time.process_time() - marker.cpu_s
    stats = window_pool_stats(marker.pool_stats, pool.stats().as_dict())
    records = [r for c in clients for r in c.records]
    disturbed = any(not r.ok or r.tries > 1 for r in records)
    # a disturbed run's floor means nothing (and the server may still be away)
    floor_qps = (
        None
        if run.rate_qps or disturbed
        else round_trip_qps(pool, run.clients, min(1.0, max(0.2, run.duration_s / 10)))
    )
    return Measured(
        sorted(records, key=lambda r: r.t_s),
        sum(c.not_issued for c in clients),
        cpu_used,
        stats,
        disturbed,
        floor_qps,
        window_epoch_s,
    )
