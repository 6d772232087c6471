"""The generator's entry point: ``generate(params)`` streams time-ordered table batches."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from data_gen.columns import ScaledInt
from data_gen.derived import DerivedAccumulator, check_columns
from data_gen.fact_columns import operation_columns, packet_columns
from data_gen.incidents import Incident, plan_incidents
from data_gen.network import ChainNetwork, build_network
from data_gen.params import GenerationParams, ResumeState
from data_gen.tables import TABLES
from data_gen.traffic import HOUR_US, US, generate_hour_range, hourly_packet_counts, pause_windows
from data_gen.vocabulary import Vocabulary

GENERATOR_VERSION = "1"


@dataclass(frozen=True)
class TableBatch:
    """Rows of one table: one array per column, in :data:`data_gen.tables.TABLES` order."""

    table: str
    columns: Mapping[str, Any]
    rows: int


def column_digest(h: Any, values: Any) -> None:
    """Feed one column into a checksum: codes + categories, mantissa + exponent, or raw array bytes."""
    if isinstance(values, pd.Categorical):
        h.update(np.ascontiguousarray(values.codes, dtype=np.int64).tobytes())
        h.update("\x00".join(map(str, values.categories)).encode())
    elif isinstance(values, ScaledInt):
        h.update(np.ascontiguousarray(values.mantissa).tobytes())
        h.update(np.ascontiguousarray(values.exponent).tobytes())
    else:
        arr = np.asarray(values)
        if arr.dtype.kind == "M":
            arr = arr.view(np.int64)
        h.update(np.ascontiguousarray(arr).tobytes())


class Generation:
    """Iterate for the batches; :meth:`manifest` is complete once iteration ends."""

    def __init__(self, params: GenerationParams, network: ChainNetwork | None = None) -> None:
        self.params = params
        preset = params.preset
        self.network = network or build_network(
            params.seed, wallets=preset.wallets, relayers=preset.relayers
        )
        self._rows: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._hashes = {t: hashlib.sha256() for t in TABLES}
        self._done = False
        self.incidents: tuple[Incident, ...] = ()
        self.next_state: ResumeState | None = None

    def __iter__(self) -> Iterator[TableBatch]:
        p = self.params
        t = self.network
        vocab = Vocabulary(t)
        start_us = int(p.start_time.timestamp()) * US
        counts = hourly_packet_counts(p, start_us)
        hours = counts.size
        span_end_us = start_us + hours * HOUR_US
        pauses = pause_windows(t, p, start_us, hours)
        self.incidents = plan_incidents(t, p.seed, start_us, hours) if p.incidents else ()
        next_seq = np.ones(t.route_src.size, dtype=np.int64)
        resume = p.resume or ResumeState()
        for r in range(t.route_src.size):
            next_seq[r] = int(resume.next_sequence.get(t.route_key(r), 1))
        next_packet, next_op = resume.next_packet_id, resume.next_operation_id
        derived = DerivedAccumulator(vocab)

        hour = 0
        while hour < hours:
            # whole hours, about batch_packets packets (at least one hour)
            cum = np.cumsum(counts[hour:])
            take = max(1, int(np.searchsorted(cum, p.batch_packets, side="right")))
            traffic = generate_hour_range(
                t,
                p,
                counts[hour : hour + take],
                hour,
                start_us,
                span_end_us,
                pauses,
                next_seq,
                next_packet,
                next_op,
                self.incidents,
            )
            hour += take
            if traffic.n == 0:
                continue
            next_packet += traffic.n
            next_op += traffic.op_id.size
            derived.add(traffic)
            yield self._emit("packet_flow", packet_columns(traffic, vocab))
            yield self._emit("clearing_operations", operation_columns(traffic, vocab))

        yield self._emit("network_stats", derived.network_stats())
        yield self._emit("channel_performance", derived.channel_performance())
        yield self._emit("relayer_performance", derived.relayer_performance())
        self.next_state = ResumeState(
            next_packet_id=next_packet,
            next_operation_id=next_op,
            next_sequence={t.route_key(r): int(next_seq[r]) for r in range(t.route_src.size)},
            start=p.start_time + pd.Timedelta(hours=hours).to_pytimedelta(),
        )
        self._done = True

    def _emit(self, table: str, columns: dict[str, Any]) -> TableBatch:
        check_columns(table, columns)
        rows = len(next(iter(columns.values())))
        h = self._hashes[table]
        for values in columns.values():
            column_digest(h, values)
        self._rows[table] += rows
        return TableBatch(table, columns, rows)

    def manifest(self) -> dict[str, Any]:
        """Seed, parameters, row counts and a SHA-256 per table (over its columns, batch by batch),
        and the planted incidents (only when the parameters ask for them)."""
        out = {
            "generator_version": GENERATOR_VERSION,
            "seed": self.params.seed,
            "scale": self.params.scale,
            "params": self.params.describe(),
            "complete": self._done,
            "rows": dict(self._rows),
            "checksums": {t: h.hexdigest() for t, h in self._hashes.items()},
            "chains": len(self.network.chains),
            "channel_pairs": int(self.network.pair_a.size),
            "relayers": int(self.network.relayer_address.size),
            "wallets": self.network.n_wallets,
        }
        if self.params.incidents:
            out["incidents"] = [i.describe(self.network) for i in self.incidents]
        return out


def generate(params: GenerationParams) -> Generation:
    """The traffic for ``params``: iterate for :class:`TableBatch` es in time order, derived tables last."""
    return Generation(params)
