"""``ibcbench ab``: a paired, interleaved A/B of two schema or settings changes on one server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ibcbench.commands import (
    add_dsn_argument,
    count_at_most,
    dataset_scale,
    non_negative_int,
    seconds,
)

#: the most rounds an A/B takes
MAX_ROUNDS = 10_000

DESCRIPTION = """\
Did this schema or settings change make anything slower? Two databases are copied from the same
dataset (CREATE DATABASE ... TEMPLATE), the base side changed by --base-migrations / --base-sql,
the head side by --head-migrations / --head-sql (neither: that side is the dataset as built). Every
workload query then runs on both, round after round, in a random order (seeded, recorded), with the
same parameters; a round's sample is the ratio head/base of the two sides' medians, and the interval
is a t-interval on the log ratios over the rounds. Beside the timing, EXPLAIN (ANALYZE, BUFFERS)
counts each query's work on both sides: a sequential scan replacing an index scan, or buffers up by
x1.2 or more, is a regression whatever the timing says. Both copies are dropped at the end.

--base-sql and --head-sql files are your own SQL, run as given on that side's copy (indexes, ALTER
DATABASE ... SET, anything): the kit does not check what they do. The copy's name is not known in
advance: to set a database setting, write it as
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET random_page_cost = 1.1', current_database()); END $$;
Migrations folders are golang-migrate files; the copy is already at the dataset's schema version, so
only the folder's newer versions run. See docs/ab.md."""


def _rounds(text: str) -> int:
    value = count_at_most(MAX_ROUNDS)(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"{value} must be at least 2 (an interval needs two rounds)"
        )
    return value


_rounds.__name__ = "rounds"


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(
            f"{text!r} is empty: give query names, e.g. wallet_history"
        )
    return names


_names.__name__ = "query list"


def register(sub: argparse._SubParsersAction) -> None:
    ab = sub.add_parser(
        "ab",
        help="paired, interleaved A/B of two schema/settings changes on one server",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ab.add_argument(
        "--scale", type=dataset_scale, default="tiny", help="dataset scale (default: tiny)"
    )
    ab.add_argument(
        "--seed", type=non_negative_int, default=42, help="dataset and order seed (default: 42)"
    )
    for side in ("base", "head"):
        ab.add_argument(
            f"--{side}-migrations",
            type=Path,
            default=None,
            metavar="DIR",
            help=f"migrations folder applied to the {side} side (its versions newer than the dataset's)",
        )
        ab.add_argument(
            f"--{side}-sql",
            type=Path,
            action="append",
            default=[],
            metavar="FILE",
            help=f"your own SQL file, run as given on the {side} side after its migrations (repeatable; default: none)",
        )
    ab.add_argument("--rounds", type=_rounds, default=40, help="most rounds (default: 40)")
    ab.add_argument(
        "--min-rounds",
        type=_rounds,
        default=8,
        help="fewest rounds before precision may stop (default: 8)",
    )
    ab.add_argument(
        "--repetitions",
        type=count_at_most(1000),
        default=5,
        help="executions per side per round; a round's sample is their median (default: 5)",
    )
    ab.add_argument(
        "--budget-s", type=seconds, default=120.0, help="seconds of rounds at most (default: 120)"
    )
    ab.add_argument(
        "--queries",
        type=_names,
        default=None,
        help="comma-separated workload queries (default: all)",
    )
    ab.add_argument(
        "--fail-on",
        choices=["regression"],
        default=None,
        help="exit 1 when a query regressed, one line per regression on stderr",
    )
    add_dsn_argument(ab)
    ab.set_defaults(func=_ab)


def _ab(args: argparse.Namespace) -> int:
    from ibcbench.bench.ab import RoundsPolicy, SideSpec, check_ab, run_ab
    from ibcbench.results.runs import build_manifest, started_run

    base = SideSpec("base", args.base_migrations, tuple(args.base_sql))
    head = SideSpec("head", args.head_migrations, tuple(args.head_sql))
    policy = RoundsPolicy(
        max_rounds=args.rounds,
        min_rounds=min(args.min_rounds, args.rounds),
        budget_s=args.budget_s,
        repetitions=args.repetitions,
    )
    check_ab(base, head, scale=args.scale, seed=args.seed, queries=args.queries)
    found: list = []
    with started_run("ab") as run:
        result = run_ab(
            args.dsn,
            base=base,
            head=head,
            scale=args.scale,
            seed=args.seed,
            policy=policy,
            queries=args.queries,
            on_dataset=found.append,
        )
        result.save(run)
        info = found[0]
        run.update_manifest(
            **build_manifest(
                info.dsn,
                seed=args.seed,
                scale=args.scale,
                parameters={
                    "command": "ab",
                    "sides": result.sides,
                    "policy": result.policy,
                    "queries": args.queries,
                    "rounds_run": result.rounds,
                    "stopped_by": result.stopped_by,
                },
                dataset=info.state.manifest() if info.state is not None else None,
            ),
            order=result.order,
            key_numbers=result.key_numbers(),
        )
    print(result.table())
    print(f"rounds: {result.rounds} ({result.stopped_by}), seed {args.seed}; run: {run.path}")
    print(result.summary_line())
    if args.fail_on == "regression" and result.regressions:
        for line in result.regression_lines():
            print(line, file=sys.stderr)
        return 1
    return 0
