"""``ibcbench tune``, ``ibcbench monitor ...`` and ``ibcbench emergency ...``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    tune = sub.add_parser(
        "tune", help="recommended PostgreSQL settings for this machine (seed's rules)"
    )
    tune.add_argument("--ram-gb", type=float, default=None, help="default: this machine's memory")
    tune.add_argument(
        "--connections", type=int, default=100, help="max_connections to size for (default: 100)"
    )
    tune.add_argument("--storage", default="ssd", help="ssd, nvme, hdd or network (default: ssd)")
    tune.add_argument("--config", action="store_true", help="print a postgresql.conf snippet")
    tune.add_argument("--compare", action="store_true", help="show the server's current values too")
    add_dsn_argument(tune)
    tune.set_defaults(func=_tune)

    mon = sub.add_parser("monitor", help="monitoring queries: slow, bloat, locks, indexes, long")
    mon.add_argument("what", choices=["slow", "bloat", "locks", "indexes", "long"])
    mon.add_argument("--limit", type=int, default=20, help="rows to show (default: 20)")
    add_dsn_argument(mon)
    mon.set_defaults(func=_monitor)

    em = sub.add_parser("emergency", help="emergency procedures (dry run unless --execute)")
    em.add_argument("action", choices=["terminate", "checkpoint", "vacuum", "reindex"])
    em.add_argument("target", nargs="?", help="table (vacuum) or index (reindex)")
    em.add_argument(
        "--min-duration-s",
        type=float,
        default=300.0,
        help="terminate: statements older than this, in seconds (default: 300)",
    )
    em.add_argument(
        "--execute", action="store_true", help="really do it (default: print what would be done)"
    )
    em.add_argument(
        "--allow-foreign", action="store_true", help="act on a database that is not the kit's"
    )
    add_dsn_argument(em)
    em.set_defaults(func=_emergency)


def _tune(args: argparse.Namespace) -> int:
    from ibcbench.toolkit.tuning import as_config, compare_with_server, recommend_settings

    recs = recommend_settings(
        ram_gb=args.ram_gb, max_connections=args.connections, storage=args.storage
    )
    if args.config:
        print(as_config(recs), end="")
        return 0
    if args.compare:
        from ibcbench.db import connect

        with connect(args.dsn) as conn:
            recs = compare_with_server(conn, recs)
    print(recs.to_string(index=False))
    return 0


def _monitor(args: argparse.Namespace) -> int:
    import pandas as pd

    from ibcbench.db import connect
    from ibcbench.toolkit import monitoring

    with connect(args.dsn) as conn:
        frame = {
            "slow": lambda: monitoring.slow_queries(conn, limit=args.limit),
            "bloat": lambda: monitoring.table_bloat(conn),
            "locks": lambda: monitoring.locks_not_granted(conn),
            "indexes": lambda: monitoring.index_usage(conn),
            "long": lambda: monitoring.long_running_queries(conn),
        }[args.what]()
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(frame.head(args.limit).to_string(index=False) if len(frame) else "(none)")
    return 0


def _emergency(args: argparse.Namespace) -> int:
    from ibcbench.db import connect
    from ibcbench.errors import ConfigError
    from ibcbench.toolkit import monitoring

    dry = not args.execute
    with connect(args.dsn, autocommit=True) as conn:
        if args.action == "terminate":
            actions = monitoring.terminate_long_queries(
                conn,
                min_duration_s=args.min_duration_s,
                dry_run=dry,
                allow_foreign=args.allow_foreign,
            )
        elif args.action == "checkpoint":
            actions = [monitoring.checkpoint(conn, dry_run=dry, allow_foreign=args.allow_foreign)]
        else:
            if not args.target:
                raise ConfigError(
                    f"emergency {args.action} needs a target: the {'table' if args.action == 'vacuum' else 'index'} name"
                )
            fn = monitoring.vacuum if args.action == "vacuum" else monitoring.reindex_concurrently
            actions = [fn(conn, args.target, dry_run=dry, allow_foreign=args.allow_foreign)]
    for a in actions:
        print(f"{'done' if a.executed else 'would'} {a.action} {a.target} {a.detail}".rstrip())
    if not actions:
        print("nothing to do")
    if dry:
        print("(dry run: pass --execute to act)")
    return 0
