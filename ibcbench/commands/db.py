"""``ibcbench db up | down | status | url``: the embedded server."""

from __future__ import annotations

import argparse

from ibcbench.settings import ServerSettings

_EDITION_LICENSES = {"community": "timescale", "apache": "apache"}


def _settings(args: argparse.Namespace) -> ServerSettings:
    kwargs: dict[str, object] = {}
    if getattr(args, "name", None):
        kwargs["name"] = args.name
    if getattr(args, "port", None) is not None:
        kwargs["port"] = args.port
    if getattr(args, "edition", None):
        kwargs["timescaledb_license"] = _EDITION_LICENSES[args.edition]
    return ServerSettings(**kwargs)  # type: ignore[arg-type]


def register(sub: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    db = sub.add_parser("db", help="the embedded PostgreSQL + TimescaleDB server")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    up = dbsub.add_parser(
        "up", help="create and start the embedded server (idempotent); prints its URL"
    )
    up.add_argument(
        "--port", type=int, default=None, help="port to listen on (default: a free one)"
    )
    up.add_argument(
        "--name", default=None, help="cluster name (default: $IBCBENCH_CLUSTER or 'default')"
    )
    up.add_argument(
        "--edition",
        choices=sorted(_EDITION_LICENSES),
        default=None,
        help="TimescaleDB edition to run (timescaledb.license; default: $TIMESCALEDB_EDITION, "
        "else community where installed)",
    )
    up.set_defaults(func=_up)

    down = dbsub.add_parser("down", help="stop the embedded server (data is kept)")
    down.add_argument("--name", default=None)
    down.set_defaults(func=_down)

    status = dbsub.add_parser("status", help="server version, extensions, TimescaleDB edition")
    status.add_argument("--name", default=None)
    add_dsn_argument(status)
    status.set_defaults(func=_status)

    jobs = dbsub.add_parser(
        "jobs",
        help="the kit's maintenance jobs and their scheduler (pg_cron or TimescaleDB jobs)",
    )
    jobs.add_argument(
        "--scheduler",
        choices=("pg_cron", "timescaledb"),
        default=None,
        help="move the jobs to this scheduler (timescaledb needs the Community edition)",
    )
    jobs.add_argument("--name", default=None)
    add_dsn_argument(jobs)
    jobs.set_defaults(func=_jobs)

    url = dbsub.add_parser("url", help="print the embedded server's connection URL")
    url.add_argument("--name", default=None)
    url.set_defaults(func=_url)


def _up(args: argparse.Namespace) -> int:
    from ibcbench.server import LocalServer

    result = LocalServer(_settings(args)).up()
    verb = "created and started" if result.created else ("started" if result.started else "running")
    print(f"embedded server {verb}: {result.data_dir}")
    for update in result.updates:
        print(update.message)
    print(result.state.url)
    # a kit database whose update failed is an error; someone else's database is only reported
    return 0 if all(u.updated or not u.kit_owned for u in result.updates) else 1


def _down(args: argparse.Namespace) -> int:
    from ibcbench.server import LocalServer

    stopped = LocalServer(_settings(args)).down()
    print("embedded server stopped" if stopped else "embedded server was not running")
    return 0


def _url(args: argparse.Namespace) -> int:
    from ibcbench.server import LocalServer

    print(LocalServer(_settings(args)).url())
    return 0


def _status(args: argparse.Namespace) -> int:
    from ibcbench.status import database_status, format_status

    print(format_status(database_status(args.dsn, _settings(args))))
    return 0


def _jobs(args: argparse.Namespace) -> int:
    from ibcbench.db import connect, resolve_dsn
    from ibcbench.status import job_schedules, use_scheduler

    with connect(resolve_dsn(args.dsn, _settings(args))) as conn:
        rows = use_scheduler(conn, args.scheduler) if args.scheduler else job_schedules(conn)
    if not rows:
        print(
            "no kit jobs in this database (pg_cron runs in the database named by cron.database_name)"
        )
    for name, scheduler, schedule in rows:
        print(f"{name:40} {scheduler:12} {schedule}")
    return 0
