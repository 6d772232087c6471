"""``ibcbench bench load``: how fast the kit loads, and how close generate+load gets to COPY alone.

The same packets (and their operations) go in every scenario: once generated and encoded in memory
beforehand for the COPY ceiling (binary COPY of pre-generated rows: no Python in the way), and once
generated while loading (end to end, the producer a forked process or a thread). Each scenario loads
into a fresh scratch database ``ibcbench_bench_load`` that the benchmark creates, marks as its own
and drops (a database of that name without the kit's mark is refused, never dropped; after a
CHECKPOINT, so no earlier writes are flushed during the timing); the fact tables only, one
transaction per connection, committed inside the timing. The server's own pace drifts by tens of
percent between runs on a small machine (WAL flushes, the kernel's writeback), so every scenario
runs several rounds, interleaved, each round in its own shuffled order (seeded), and the median
round is reported with the rounds' spread. A ratio to the ceiling is paired: computed within each
round (a scenario's rows/s over the ceiling's of the same round, layout and indexes), then the
median of those per-round ratios is reported with their range. Dividing medians taken from
different rounds would mix the drift into the ratio.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg

from data_gen import GenerationParams, generate
from data_gen.tables import FACT_TABLES, TABLES
from ibcbench.data.load import EncodedBatch, batch_stream, copy_stream, overlapped_batches
from ibcbench.data.ownership import check_kit_database, create_kit_database, drop_kit_database
from ibcbench.data.pgcopy import encode_rows_view
from ibcbench.db import connect, resolve_dsn
from ibcbench.dsn import describe_dsn, with_database
from ibcbench.errors import BenchmarkError
from ibcbench.infra.migrate import Migrator, default_migrations_dir

SCRATCH_DB = "ibcbench_bench_load"
_FACTS = "+".join(FACT_TABLES)


@dataclass(frozen=True)
class Scenario:
    """One measured load: where the batches come from, and the target's layout and indexes."""

    name: str
    source: str  # "memory" (pre-generated: the ceiling), "process" or "thread" (generate + load)
    layout: str  # "plain" or "hypertable"
    secondary_indexes: bool
    tables: tuple[str, ...] = FACT_TABLES
    connections: int = 1
    #: packet_flow stripped for the breakdown: "" (as the schema has it), "no primary key", or
    #: "unlogged, no primary key" (what the server spends on the key's btree and on WAL)
    stripped: str = ""


_STRIP = {
    "": [],
    "no primary key": ["ALTER TABLE packet_flow DROP CONSTRAINT packet_flow_pkey"],
    "unlogged, no primary key": [
        "ALTER TABLE packet_flow DROP CONSTRAINT packet_flow_pkey",
        "ALTER TABLE packet_flow SET UNLOGGED",
    ],
}

SCENARIOS = (
    Scenario("COPY ceiling (pre-generated)", "memory", "plain", False),
    Scenario("generate + load, producer thread", "thread", "plain", False),
    Scenario("generate + load, producer process", "process", "plain", False),
    Scenario("COPY ceiling, packet_flow only", "memory", "plain", False, ("packet_flow",)),
    Scenario("COPY ceiling, packet_flow only", "memory", "plain", False, ("packet_flow",), 2),
    Scenario(
        "COPY ceiling, packet_flow only",
        "memory",
        "plain",
        False,
        ("packet_flow",),
        1,
        "no primary key",
    ),
    Scenario(
        "COPY ceiling, packet_flow only",
        "memory",
        "plain",
        False,
        ("packet_flow",),
        1,
        "unlogged, no primary key",
    ),
    Scenario("COPY ceiling (pre-generated)", "memory", "hypertable", False),
    Scenario("generate + load, producer thread", "thread", "hypertable", False),
    Scenario("COPY ceiling (pre-generated)", "memory", "plain", True),
    Scenario("generate + load, producer thread", "thread", "plain", True),
    Scenario("COPY ceiling (pre-generated)", "memory", "hypertable", True),
    Scenario("generate + load, producer thread", "thread", "hypertable", True),
)
#: the three that give the headline ratio, for a quick look
OVERLAP_SCENARIOS = SCENARIOS[:3]


@dataclass(frozen=True)
class LoadBenchResult:
    """Every scenario's rows/s and MB/s, and the headline figures."""

    frame: pd.DataFrame
    packets: int
    ratio_end_to_end: (
        float  # producer thread (the default) / COPY ceiling, plain, no secondary indexes
    )
    ratio_end_to_end_process: float
    ceiling_packet_flow_rows_per_s: float  # one connection, plain, no secondary indexes
    ceiling_packet_flow_2conn_rows_per_s: float
    #: packet_flow alone, one connection, stripped: where the server's time goes
    stripped_packet_flow_rows_per_s: dict[str, float]
    manifest: dict[str, Any]
    #: the smallest and largest round's ratio behind ``ratio_end_to_end`` (paired within rounds)
    ratio_end_to_end_range: tuple[float, float] = (float("nan"), float("nan"))


def _fresh(admin_dsn: str, layout: str, indexes: bool, stripped: str = "") -> str:
    """A new scratch database with the core tables, as a hypertable or not, with indexes or not,
    packet_flow stripped as a breakdown scenario asks."""
    _drop(admin_dsn)
    with connect(admin_dsn, autocommit=True) as admin:
        create_kit_database(admin, SCRATCH_DB)
    dsn = with_database(admin_dsn, SCRATCH_DB)
    Migrator(dsn).up(3 if layout == "hypertable" else 2)
    with connect(dsn, autocommit=True) as conn:
        if (
            layout == "hypertable"
            and not conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()
        ):
            raise BenchmarkError(
                "timescaledb is not installed on this server: the hypertable scenarios need it"
            )
        if indexes:
            ddl = (default_migrations_dir() / "000004_create_indexes.up.sql").read_text()
            conn.execute(ddl.encode())
        for statement in _STRIP[stripped]:
            conn.execute(statement)
        conn.execute("CHECKPOINT")
    return dsn


def _drop(admin_dsn: str) -> None:
    """Drop the scratch database if the kit created it; refuse a same-named one it did not."""
    with connect(admin_dsn, autocommit=True) as admin:
        drop_kit_database(admin, SCRATCH_DB)


def _copy_batches(dsn: str, batches: Iterable[Any], tables: tuple[str, ...]) -> tuple[int, int]:
    """COPY the batches of ``tables`` in one transaction; (rows, bytes)."""
    rows = size = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for item in batches:
            if isinstance(item, EncodedBatch) and item.table in tables:
                size += copy_stream(cur, item.table, batch_stream(item.body))
                rows += item.rows
        conn.commit()
    return rows, size


def _run(
    dsn: str, scenario: Scenario, params: GenerationParams, encoded: list[EncodedBatch]
) -> dict[str, Any]:
    started = time.perf_counter()
    if scenario.source != "memory":
        rows, size = _copy_batches(
            dsn, overlapped_batches(params, scenario.source), scenario.tables
        )
    elif scenario.connections == 1:
        rows, size = _copy_batches(dsn, encoded, scenario.tables)
    else:
        # round-robin the batches over several connections, each its own transaction
        results: list[tuple[int, int]] = []
        errors: list[BaseException] = []

        def work(share: list[EncodedBatch]) -> None:
            try:
                results.append(_copy_batches(dsn, share, scenario.tables))
            except BaseException as exc:
                errors.append(exc)

        mine = [b for b in encoded if b.table in scenario.tables]
        shares = [mine[i :: scenario.connections] for i in range(scenario.connections)]
        workers = [threading.Thread(target=work, args=(share,)) for share in shares]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise errors[0]
        rows, size = sum(r for r, _ in results), sum(s for _, s in results)
    elapsed = time.perf_counter() - started
    return {
        "scenario": scenario.name,
        "layout": scenario.layout,
        "secondary_indexes": scenario.secondary_indexes,
        "tables": "+".join(scenario.tables)
        + (f" ({scenario.stripped})" if scenario.stripped else ""),
        "connections": scenario.connections,
        "rows": rows,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "MB_per_s": round(size / 1e6 / elapsed, 1),
    }


def _producer_alone(params: GenerationParams) -> tuple[float, float]:
    """Seconds spent generating and encoding every batch, streaming (nothing kept, nothing sent)."""
    encode_s = 0.0
    started = time.perf_counter()
    for batch in generate(params):
        t0 = time.perf_counter()
        encode_rows_view(TABLES[batch.table], batch.columns, batch.rows)
        encode_s += time.perf_counter() - t0
    return time.perf_counter() - started - encode_s, encode_s


def _pregenerate(params: GenerationParams) -> list[EncodedBatch]:
    """The fact tables' batches, encoded and kept in memory for the ceiling scenarios."""
    return [
        EncodedBatch(b.table, b.rows, encode_rows_view(TABLES[b.table], b.columns, b.rows))
        for b in generate(params)
        if b.table in FACT_TABLES
    ]


def run_load_benchmark(
    dsn: str | None = None,
    *,
    packets: int = 1_000_000,
    seed: int = 42,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    rounds: int = 3,
) -> LoadBenchResult:
    """Run every scenario ``rounds`` times on the server of ``dsn``; rows/s, MB/s and the ratios
    come from each scenario's median round."""
    if packets < 1_000:
        raise BenchmarkError(f"packets must be at least 1000 to time anything, not {packets}")
    if rounds < 1:
        raise BenchmarkError(f"rounds must be at least 1, not {rounds}")
    admin = with_database(resolve_dsn(dsn), "postgres")
    with connect(admin, autocommit=True) as conn:  # before any work: never drop a user's database
        check_kit_database(conn, SCRATCH_DB)
    params = GenerationParams(seed=seed, scale="default", packets=packets)
    generate_s, encode_s = _producer_alone(params)
    encoded = _pregenerate(params) if any(sc.source == "memory" for sc in scenarios) else []
    rounds_frame = _run_rounds(admin, scenarios, params, encoded, rounds=rounds, seed=seed)
    frame = _with_ratios(_median_of_rounds(rounds_frame), paired_ratios(rounds_frame))
    plain = {"layout": "plain", "secondary_indexes": False}
    end_to_end = {"scenario": "generate + load, producer thread", **plain}
    return LoadBenchResult(
        frame=frame,
        packets=packets,
        ratio_end_to_end=_pick(frame, "ratio_to_ceiling", **end_to_end),
        ratio_end_to_end_range=(
            _pick(frame, "ratio_min", **end_to_end),
            _pick(frame, "ratio_max", **end_to_end),
        ),
        ratio_end_to_end_process=_pick(
            frame, "ratio_to_ceiling", scenario="generate + load, producer process", **plain
        ),
        ceiling_packet_flow_rows_per_s=_pick(
            frame, "rows_per_s", tables="packet_flow", connections=1, **plain
        ),
        ceiling_packet_flow_2conn_rows_per_s=_pick(
            frame, "rows_per_s", tables="packet_flow", connections=2, **plain
        ),
        stripped_packet_flow_rows_per_s={
            k: _pick(frame, "rows_per_s", tables=f"packet_flow ({k})", connections=1, **plain)
            for k in _STRIP
            if k
        },
        manifest={
            "seed": seed,
            "packets": packets,
            "generate_s": round(generate_s, 2),
            "encode_s": round(encode_s, 2),
            "rounds": rounds,
            "order": "shuffled in every round (random.Random(seed))",
            "ratios": "per round, then the median of the rounds' ratios",
            "round_orders": [
                [int(i) for i in g.sort_values("position").i]
                for _, g in rounds_frame.groupby("round")
            ],
            "server": describe_dsn(admin),
        },
    )


def _run_rounds(
    admin: str,
    scenarios: tuple[Scenario, ...],
    params: GenerationParams,
    encoded: list[EncodedBatch],
    *,
    rounds: int,
    seed: int,
) -> pd.DataFrame:
    """Every scenario once per round, each on a fresh scratch database, in an order shuffled per
    round; one row per run (``i`` the scenario's number, ``round``, ``position``). The scratch
    database is dropped at the end, even on failure."""
    records = []
    shuffle = random.Random(seed)
    try:
        for round_ in range(rounds):  # rounds interleave the scenarios: drift hits them all alike
            order = list(enumerate(scenarios))
            shuffle.shuffle(order)  # no scenario always first (on a cold server) or last
            for position, (i, scenario) in enumerate(order):
                record = _run(
                    _fresh(admin, scenario.layout, scenario.secondary_indexes, scenario.stripped),
                    scenario,
                    params,
                    encoded,
                )
                records.append({"i": i, "round": round_, "position": position, **record})
    finally:
        _drop(admin)
    return pd.DataFrame(records)


def _with_ratios(frame: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    """The median rounds with each scenario's paired ratio to the ceiling and its range."""
    frame["ratio_to_ceiling"] = frame.index.map(paired.ratio_to_ceiling)
    frame["ratio_min"] = frame.index.map(paired.ratio_min)
    frame["ratio_max"] = frame.index.map(paired.ratio_max)
    return frame.reset_index(drop=True)


def _pick(frame: pd.DataFrame, column: str, **where: Any) -> float:
    """``column`` of the first row matching ``where`` (NaN when none does)."""
    sel = frame
    for key, value in where.items():
        sel = sel[sel[key] == value]
    return float(sel[column].iloc[0]) if len(sel) else float("nan")


def _median_of_rounds(records: pd.DataFrame) -> pd.DataFrame:
    """One row per scenario (indexed by its number ``i``): its median round's seconds, the rates
    from it, and the rounds' spread."""
    rows = []
    for i, runs in records.groupby("i", sort=True):
        seconds = runs["seconds"]
        median = runs.iloc[(seconds - seconds.median()).abs().argsort().iloc[0]]  # a real round
        row = median.drop(["i", "round", "position"], errors="ignore").to_dict()
        row["rounds"] = len(runs)
        row["spread_pct"] = round(100 * (seconds.max() - seconds.min()) / seconds.median(), 1)
        rows.append((i, row))
    return pd.DataFrame([r for _, r in rows], index=pd.Index([i for i, _ in rows], name="i"))


def paired_ratios(records: pd.DataFrame) -> pd.DataFrame:
    """Per scenario ``i`` loading the fact tables: its rows/s over the COPY ceiling's (one
    connection, same layout and indexes) of the same round; the median over rounds, and the
    smallest and largest round's ratio. Scenarios without a ceiling in their round are left out."""
    ratios: dict[int, list[float]] = {}
    for _, runs in records.groupby("round", sort=True):
        ceiling = {
            (r.layout, r.secondary_indexes): r.rows_per_s
            for r in runs.itertuples()
            if r.scenario.startswith("COPY ceiling (") and r.connections == 1 and r.tables == _FACTS
        }
        for r in runs.itertuples():
            key = (r.layout, r.secondary_indexes)
            if r.tables == _FACTS and key in ceiling:
                ratios.setdefault(int(r.i), []).append(r.rows_per_s / ceiling[key])
    return pd.DataFrame(
        {
            "ratio_to_ceiling": {
                i: round(float(pd.Series(v).median()), 3) for i, v in ratios.items()
            },
            "ratio_min": {i: round(min(v), 3) for i, v in ratios.items()},
            "ratio_max": {i: round(max(v), 3) for i, v in ratios.items()},
        },
        columns=["ratio_to_ceiling", "ratio_min", "ratio_max"],
    ).rename_axis("i")


def format_load_benchmark(result: LoadBenchResult) -> str:
    """The printed report: the producer's own time, the scenario table, the headline figures."""
    m = result.manifest
    lines = [
        f"load benchmark: {result.packets:,} packets (+ their operations), seed {m['seed']}, "
        f"server {m['server']}",
        f"the producer alone (no COPY, one core): generate {m['generate_s']} s + encode "
        f"{m['encode_s']} s",
        result.frame.to_string(index=False),
        "",
        f"end-to-end / ceiling (plain, no secondary indexes, each round against its own ceiling, "
        f"median of {m['rounds']} rounds): {result.ratio_end_to_end:.3f} with the producer thread "
        f"(the default; rounds {result.ratio_end_to_end_range[0]:.3f}..{result.ratio_end_to_end_range[1]:.3f}), "
        f"{result.ratio_end_to_end_process:.3f} with a producer process",
    ]
    alone = {
        "1 connection": result.ceiling_packet_flow_rows_per_s,
        "2 connections": result.ceiling_packet_flow_2conn_rows_per_s,
    }
    alone.update(
        {f"1 connection, {k}": v for k, v in result.stripped_packet_flow_rows_per_s.items()}
    )
    measured = [f"{v:,.0f} rows/s ({k})" for k, v in alone.items() if not math.isnan(v)]
    if measured:
        lines.append(
            "binary COPY into plain packet_flow without secondary indexes: " + "; ".join(measured)
        )
    return "\n".join(lines)
