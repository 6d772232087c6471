"""``ibcbench schema up [N] | down N | version | force V``: golang-migrate compatible migrations."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    schema = sub.add_parser(
        "schema", help="apply or revert the schema migrations (golang-migrate compatible)"
    )
    ssub = schema.add_subparsers(dest="schema_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        add_dsn_argument(p)
        p.add_argument(
            "--path", type=Path, default=None, help="migrations folder (default: schema/migrations)"
        )

    up = ssub.add_parser("up", help="apply all pending migrations, or the next N")
    up.add_argument("steps", nargs="?", type=int, default=None)
    common(up)
    up.set_defaults(func=_up)

    down = ssub.add_parser("down", help="revert the last N migrations (--all: every one)")
    down.add_argument("steps", nargs="?", type=int, default=None)
    down.add_argument("--all", action="store_true", help="revert every applied migration")
    common(down)
    down.set_defaults(func=_down)

    version = ssub.add_parser(
        "version", help="print the applied version (and 'dirty' if a migration failed)"
    )
    common(version)
    version.set_defaults(func=_version)

    force = ssub.add_parser(
        "force",
        help="set the version without running migrations; clears dirty (refuses a database that "
        "was never migrated)",
    )
    force.add_argument("version", type=int, help="a migration version, or -1 for none")
    common(force)
    force.set_defaults(func=_force)


def _print_result(result) -> None:
    for label in result.applied:
        print(f"{result.direction:>4}  {label}")
    for notice in result.notices:
        print(notice)
    if not result.applied:
        print("no change")
    print(
        f"version: {result.version if result.version is not None else 'none'} ({result.elapsed_ms:.0f} ms)"
    )


def _up(args: argparse.Namespace) -> int:
    from ibcbench.infra.migrate import Migrator

    _print_result(Migrator(args.dsn, args.path).up(args.steps))
    return 0


def _down(args: argparse.Namespace) -> int:
    from ibcbench.errors import ConfigError
    from ibcbench.infra.migrate import Migrator

    migrator = Migrator(args.dsn, args.path)
    if args.all:
        migrator.require_migrated("nothing to revert, nothing was changed")
        current, _ = migrator.version()
        steps = len(
            [m for m in migrator.migrations if current is not None and m.version <= current]
        )
        if steps == 0:
            print("no change\nversion: none")
            return 0
    elif args.steps is None:
        raise ConfigError("schema down needs a number of migrations to revert (or --all)")
    else:
        steps = args.steps
    _print_result(migrator.down(steps))
    return 0


def _version(args: argparse.Namespace) -> int:
    from ibcbench.infra.migrate import Migrator

    migrator = Migrator(args.dsn, args.path)
    version, dirty = migrator.version()
    invalid = migrator.invalid() if version is not None else []
    print(
        ("none" if version is None else str(version))
        + (" (dirty)" if dirty else "")
        + (
            f" (INVALID indexes: {', '.join(invalid)}; run `ibcbench schema up` to rebuild them)"
            if invalid
            else ""
        )
    )
    return 0


def _force(args: argparse.Namespace) -> int:
    from ibcbench.infra.migrate import Migrator

    Migrator(args.dsn, args.path).force(args.version)
    print(f"version forced to {args.version}")
    return 0
