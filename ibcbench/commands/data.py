"""``ibcbench generate | load | seed`` and ``ibcbench bench load``."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from ibcbench.commands import (
    count_at_most,
    dataset_scale,
    iso_datetime,
    non_negative_int,
    positive_float,
    positive_int,
)

#: the most rounds of ``bench load`` / ``bench generate``
MAX_ROUNDS = 1_000


def _gen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scale",
        type=dataset_scale,
        default="tiny",
        help="tiny, small, default (>= 1M packets), large (>= 10M) (default: tiny)",
    )
    p.add_argument("--seed", type=non_negative_int, default=42, help="generator seed (default: 42)")
    p.add_argument(
        "--packets", type=positive_int, default=None, help="packet count (default: the scale's)"
    )
    p.add_argument(
        "--days",
        type=positive_float,
        default=None,
        help="time span in days (default: the scale's)",
    )
    p.add_argument(
        "--start",
        type=iso_datetime,
        default=None,
        help="span start, ISO 8601 with time zone (default: 2026-01-01Z, "
        "or right after the data already loaded)",
    )
    p.add_argument(
        "--no-incidents",
        action="store_true",
        help="no planted chain halts, relayer outages, congestion or client expiry",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    gen = sub.add_parser(
        "generate", help="generate a dataset into a folder of binary COPY files + manifest"
    )
    _gen_args(gen)
    gen.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    gen.add_argument(
        "--dsn",
        default=None,
        help="continue the data in this database (next ids, sequences, span; default: none, a fresh start)",
    )
    gen.set_defaults(func=_generate)

    load = sub.add_parser(
        "load", help="load a generated folder (refuses overlaps; the same folder twice is a no-op)"
    )
    load.add_argument("folder", type=Path)
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dsn_argument(load)
    load.set_defaults(func=_load)

    seed = sub.add_parser(
        "seed", help="generate and load at once (overlapped); appends after existing data"
    )
    _gen_args(seed)
    seed.add_argument(
        "--overlap",
        choices=("thread", "process", "none"),
        default="thread",
        help="what generates while the main thread COPYs (default: thread, the fastest in "
        "docs/loading.md's measurements)",
    )
    add_dsn_argument(seed)
    seed.set_defaults(func=_seed)


def register_bench(bench: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    p = bench.add_parser(
        "load",
        help="load throughput: end to end vs binary COPY ceiling, plain vs hypertable, "
        "with and without secondary indexes",
    )
    p.add_argument(
        "--packets",
        type=positive_int,
        default=1_000_000,
        help="packets per round (default: 1000000)",
    )
    p.add_argument("--seed", type=non_negative_int, default=42, help="generator seed (default: 42)")
    p.add_argument(
        "--scenarios",
        choices=("all", "overlap"),
        default="all",
        help="all, or only the ceiling and the two generate + load modes (plain table, no "
        "secondary indexes) (default: all)",
    )
    p.add_argument(
        "--rounds",
        type=count_at_most(MAX_ROUNDS),
        default=3,
        help="times each scenario runs, interleaved; the median round is reported (default: 3)",
    )
    add_dsn_argument(p)
    p.set_defaults(func=_bench_load)

    g = bench.add_parser(
        "generate",
        help="the generator alone: wall time, rows/s and peak memory of `ibcbench generate` "
        "(a child process per round, into a temporary folder)",
    )
    g.add_argument(
        "--scale",
        type=dataset_scale,
        default="default",
        help="tiny, small, default, large (default: default)",
    )
    g.add_argument("--seed", type=non_negative_int, default=42, help="generator seed (default: 42)")
    g.add_argument(
        "--rounds",
        type=count_at_most(MAX_ROUNDS),
        default=1,
        help="rounds, each a fresh process (default: 1)",
    )
    g.set_defaults(func=_bench_generate)


def _bench_generate(args: argparse.Namespace) -> int:
    from ibcbench.bench.generation import benchmark_generation

    result = benchmark_generation(args.scale, seed=args.seed, rounds=args.rounds)
    print(result.frame.to_string(index=False))
    print(result.summary())
    return 0


def _params(args: argparse.Namespace, resume=None):
    from data_gen import GenerationParams, ParamError
    from ibcbench.errors import ConfigError

    try:
        start = datetime.fromisoformat(args.start) if args.start else None
        return GenerationParams(
            seed=args.seed,
            scale=args.scale,
            packets=args.packets,
            days=args.days,
            start=start,
            resume=resume,
            incidents=not getattr(args, "no_incidents", False),
        )
    except (ParamError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def _check_room(params, out: Path | None) -> None:
    """A generation that cannot fit the disk at ``out`` or the memory: refused before any work."""
    from ibcbench.inputs import check_room

    check_room(
        f"generating {params.total_packets:,} packets over {params.span_days:g} days",
        disk_bytes=params.disk_bytes() if out is not None else 0,
        folder=out,
        memory_bytes=params.memory_bytes(),
    )


def _generate(args: argparse.Namespace) -> int:
    from ibcbench.data.load import generate_dataset, resume_state

    resume = None
    if args.dsn:
        from ibcbench.db import connect

        with connect(args.dsn) as conn:
            resume = resume_state(conn)
    params = _params(args, resume)
    _check_room(params, args.out)
    result = generate_dataset(params, args.out, quiet=args.quiet)
    rows = result.manifest["rows"]
    print(
        f"generated {sum(rows.values()):,} rows in {result.elapsed_s:.1f} s into {result.out_dir}"
    )
    for table, n in rows.items():
        print(f"  {table:<22} {n:>12,} rows  {result.files[table] / 1e6:>9.1f} MB")
    return 0


def _print_load(result) -> None:
    from ibcbench.data.journal import settled_line

    line = settled_line(list(result.settled))
    if line:
        print(line)
    if result.skipped:
        print("already loaded (same checksums): nothing to do")
        return
    print(result.summary.to_string(index=False))
    print(
        f"loaded {result.rows:,} rows in {result.elapsed_s:.1f} s: {result.rows_per_s:,.0f} rows/s, "
        f"{result.mb_per_s:.1f} MB/s; span {result.span_start:%Y-%m-%d %H:%M} .. {result.span_end:%Y-%m-%d %H:%M}"
    )


def _load(args: argparse.Namespace) -> int:
    from ibcbench.data.load import load_dataset

    _print_load(load_dataset(args.dsn, args.folder, quiet=args.quiet or not sys.stderr.isatty()))
    return 0


def _seed(args: argparse.Namespace) -> int:
    from ibcbench.data.load import load_dataset

    quiet = args.quiet or not sys.stderr.isatty()
    params = _params(args)
    _check_room(params, None)
    _print_load(load_dataset(args.dsn, params, quiet=quiet, overlap=args.overlap))
    return 0


def _bench_load(args: argparse.Namespace) -> int:
    from ibcbench.bench.ingest import (
        OVERLAP_SCENARIOS,
        SCENARIOS,
        format_load_benchmark,
        run_load_benchmark,
    )

    scenarios = SCENARIOS if args.scenarios == "all" else OVERLAP_SCENARIOS
    result = run_load_benchmark(
        args.dsn, packets=args.packets, seed=args.seed, scenarios=scenarios, rounds=args.rounds
    )
    print(format_load_benchmark(result))
    return 0
