"""``ibcbench bench faults``: the fault suite's table and its last line."""

from __future__ import annotations

import argparse

from ibcbench.commands import non_negative_int


def register_bench(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser(
        "faults",
        help="inject faults (interrupted loads, server restarts, disk full, bad input, races) "
        "on a cluster of its own; prints what happened",
    )
    p.add_argument(
        "--scale",
        default="small",
        help="tiny (the fast faults only), small (every fault) or default (default: small)",
    )
    p.add_argument("--seed", type=non_negative_int, default=42, help="dataset seed (default: 42)")
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated faults or groups (see --list; default: all of the scale's)",
    )
    p.add_argument("--list", action="store_true", help="list the faults and exit")
    p.add_argument(
        "--keep", action="store_true", help="keep the suite's cluster and folders (for a look)"
    )
    p.set_defaults(func=_faults)


def _faults(args: argparse.Namespace) -> int:
    from ibcbench.errors import ConfigError
    from ibcbench.faults.lab import FAULT_SCALES
    from ibcbench.faults.registry import registered_faults
    from ibcbench.faults.run import run_fault_suite
    from ibcbench.results.runs import check_runs_root, started_run

    if args.list:
        for f in registered_faults():
            print(f"{f.group:<12} {f.name:<40} {'fast' if f.fast else 'small and up'}")
        return 0
    if args.scale not in FAULT_SCALES:
        raise ConfigError(
            f"--scale {args.scale!r} is unknown: use one of {', '.join(FAULT_SCALES)}"
        )
    only = [x.strip() for x in args.only.split(",") if x.strip()] if args.only else None
    check_runs_root()  # a full runs folder fails now, not after the suite ran
    print(f"fault suite at scale {args.scale} (seed {args.seed}), on a cluster of its own:")
    result = run_fault_suite(args.scale, seed=args.seed, only=only, keep=args.keep)
    with started_run(f"faults-{args.scale}") as run:
        run.update_manifest(
            scale=args.scale,
            seed=args.seed,
            faults={"elapsed_s": round(result.elapsed_s, 1), **result.server},
            key_numbers=result.key_numbers(),
        )
        result.save(run)
    print(result.table())
    longest = result.longest_recovery()
    if longest is not None:
        print(f"longest recovery: {longest.recovery_s:.1f} s ({longest.group}/{longest.fault})")
    if result.workdir is not None:
        kept = "kept: look, then remove it" if result.workdir.exists() else "removed"
        print(f"the suite's cluster and folders: {result.workdir} ({kept})")
    print(f"run folder: {run.path}")
    print(result.summary_line())
    return 0 if result.ok else 1
