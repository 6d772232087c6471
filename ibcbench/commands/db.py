"""``ibcbench db up | down | status | url``: the embedded server."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ibcbench.settings import ServerSettings

if TYPE_CHECKING:
    from ibcbench.infra.memberstatus import MemberStatus
    from ibcbench.infra.server import LocalServer

_EDITION_LICENSES = {"community": "timescale", "apache": "apache"}
_NAME_HELP = "the embedded cluster's name (default: $IBCBENCH_CLUSTER, else 'default')"


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
    db = sub.add_parser("db", help="the embedded PostgreSQL + TimescaleDB server")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    _register_up(dbsub)
    _register_down(dbsub)
    _register_status(dbsub)
    _register_jobs(dbsub)
    _register_url(dbsub)


def _register_up(dbsub: argparse._SubParsersAction) -> None:
    up = dbsub.add_parser(
        "up", help="create and start the embedded server (idempotent); prints its URL"
    )
    up.add_argument(
        "--port", type=int, default=None, help="port to listen on (default: a free one)"
    )
    up.add_argument("--name", default=None, help=_NAME_HELP)
    up.add_argument(
        "--edition",
        choices=sorted(_EDITION_LICENSES),
        default=None,
        help="TimescaleDB edition to run (timescaledb.license; default: $TIMESCALEDB_EDITION, "
        "else community where installed)",
    )
    up.add_argument(
        "--replicas",
        type=int,
        default=None,
        metavar="N",
        help="streaming standbys of the primary (default: as recorded; 0 removes them)",
    )
    up.add_argument(
        "--pgbouncer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="PgBouncer in front of the primary (default: as recorded)",
    )
    up.add_argument(
        "--pool-mode",
        choices=("transaction", "session"),
        default=None,
        help="PgBouncer's pool mode (default: transaction)",
    )
    up.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="PgBouncer's server connections per database and user (default: 25)",
    )
    up.add_argument(
        "--redis",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Redis beside the server, on 127.0.0.1 with a password (default: leave it as it is)",
    )
    up.set_defaults(func=_up)


def _register_down(dbsub: argparse._SubParsersAction) -> None:
    down = dbsub.add_parser(
        "down", help="stop the embedded server, its standbys and PgBouncer (data is kept)"
    )
    down.add_argument("--name", default=None, help=_NAME_HELP)
    down.set_defaults(func=_down)


def _register_status(dbsub: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    status = dbsub.add_parser("status", help="server version, extensions, TimescaleDB edition")
    status.add_argument("--name", default=None, help=_NAME_HELP)
    add_dsn_argument(status)
    status.add_argument(
        "--replica-dsn",
        default=None,
        help="standby URL(s), comma-separated (default: $REPLICA_URL, else the embedded ones)",
    )
    status.add_argument(
        "--pgbouncer-dsn",
        default=None,
        help="PgBouncer URL (default: $PGBOUNCER_URL, else the embedded one)",
    )
    status.set_defaults(func=_status)


def _register_jobs(dbsub: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    jobs = dbsub.add_parser(
        "jobs",
        help="the kit's maintenance jobs and their scheduler (pg_cron or TimescaleDB jobs)",
    )
    jobs.add_argument(
        "--scheduler",
        choices=("pg_cron", "timescaledb"),
        default=None,
        help="move the jobs to this scheduler (timescaledb needs the Community edition; default: none, list them)",
    )
    jobs.add_argument("--name", default=None, help=_NAME_HELP)
    add_dsn_argument(jobs)
    jobs.set_defaults(func=_jobs)


def _register_url(dbsub: argparse._SubParsersAction) -> None:
    url = dbsub.add_parser("url", help="print the embedded server's connection URL")
    url.add_argument("--name", default=None, help=_NAME_HELP)
    url.add_argument(
        "--role",
        choices=("primary", "replica", "pgbouncer"),
        default="primary",
        help="which member's URL (replica: one line per standby; default: primary)",
    )
    url.add_argument(
        "--with-password",
        action="store_true",
        help="put the password in the URL (default: the URL names the password file, readable by "
        "you only, with passfile=)",
    )
    url.set_defaults(func=_url)


def _up(args: argparse.Namespace) -> int:
    from ibcbench.infra.redis import find_redis_server
    from ibcbench.infra.scaleout import ScaleOut

    if args.redis:
        find_redis_server()  # missing: one line before any work
    up = ScaleOut(_settings(args)).up(
        replicas=args.replicas,
        pgbouncer=args.pgbouncer,
        pool_mode=args.pool_mode,
        pool_size=args.pool_size,
    )
    result = up.primary
    for note in result.notes:
        print(f"ibcbench: {note}", file=sys.stderr)
    verb = "created and started" if result.created else ("started" if result.started else "running")
    print(f"embedded server {verb}: {result.data_dir}")
    for update in result.updates:
        print(update.message)
    print(result.state.url)
    for line in up.cleaned:
        print(f"cleaned: {line}")
    for m in up.members[1:]:
        print(f"{m.name}: {m.url} ({'started' if m.name in up.started else 'running'}; {m.detail})")
    for name in up.removed:
        print(f"{name}: removed")
    _up_redis(args)
    # a kit database whose update failed is an error; someone else's database is only reported
    return 0 if all(u.updated or not u.kit_owned for u in result.updates) else 1


def _down(args: argparse.Namespace) -> int:
    from ibcbench.infra.scaleout import ScaleOut

    topo = ScaleOut(_settings(args))
    stopped = topo.down()
    check = topo.server.pid_check()
    if "primary" in stopped:
        print("embedded server stopped")
    elif check.stale:
        print(
            f"embedded server was not running: its PID file {check.path} is stale ({check.reason}); "
            "nothing was signalled"
        )
    else:
        print("embedded server was not running")
    for name in stopped:
        if name != "primary":
            print(f"{name} stopped")
    from ibcbench.infra.redis import LocalRedis

    if LocalRedis(_settings(args)).down():
        print("redis stopped")
    return 0


def _up_redis(args: argparse.Namespace) -> None:
    """``--redis``: Redis started (or running); ``--no-redis``: stopped; neither: left alone."""
    from ibcbench.infra.redis import LocalRedis

    redis = LocalRedis(_settings(args))
    if args.redis:
        verb = "started" if redis.up() else "running"
        print(f"redis: {redis.url(with_password=False)} ({verb}; password in {redis.passfile})")
    elif args.redis is False and redis.down():
        print("redis: stopped")


def _url(args: argparse.Namespace) -> int:
    from ibcbench.errors import ServerError
    from ibcbench.infra.scaleout import ScaleOut
    from ibcbench.infra.server import LocalServer

    server = LocalServer(_settings(args))
    if args.role == "primary":
        server.url()  # refuses a stopped server
        state = server.read_state()
        assert state is not None
        print(state.url_with_password() if args.with_password else state.url)
        return 0
    topo = ScaleOut(_settings(args))
    urls = (
        topo.replica_urls() if args.role == "replica" else [u for u in [topo.pgbouncer_url()] if u]
    )
    if args.with_password:
        urls = [_with_password(u, server) for u in urls]
    if not urls:
        flag = "--replicas 1" if args.role == "replica" else "--pgbouncer"
        raise ServerError(
            f"no {args.role} is running in {topo.settings.name!r}: run `ibcbench db up {flag}`"
        )
    print("\n".join(urls))
    return 0


def _with_password(url: str, server: LocalServer) -> str:
    """``url`` (a member's, naming the password file) with the password instead."""
    from psycopg.conninfo import conninfo_to_dict

    from ibcbench.infra import serverauth

    state = server.read_state()
    password = state.password() if state else None
    params = conninfo_to_dict(url)
    if state is None or password is None:
        return url
    return serverauth.url_with_password(
        state.role, "127.0.0.1", int(str(params["port"])), str(params["dbname"]), password
    )


def _moved_port(args: argparse.Namespace) -> str | None:
    """A line for ``db status`` when the embedded server came up on another port than before."""
    from ibcbench.infra.server import LocalServer
    from ibcbench.settings import explicit_dsn

    if explicit_dsn(args.dsn) is not None:
        return None
    state = LocalServer(_settings(args)).read_state()
    if state is None or state.previous_port is None:
        return None
    return (
        f"port:         {state.port}, moved from {state.previous_port} at the last start: a URL "
        f"saved before reaches whatever listens on {state.previous_port} now; "
        "take the new one from `ibcbench db url`"
    )


def _status(args: argparse.Namespace) -> int:
    from ibcbench.data.inventory import format_datasets, list_datasets
    from ibcbench.infra.memberstatus import topology_status
    from ibcbench.infra.status import database_status, format_status

    print(format_status(database_status(args.dsn, _settings(args))))
    moved = _moved_port(args)
    if moved:
        print(moved)
    print(format_datasets(list_datasets(args.dsn, _settings(args))))
    members = topology_status(
        args.dsn,
        replica_dsn=args.replica_dsn,
        pgbouncer_dsn=args.pgbouncer_dsn,
        settings=_settings(args),
    )
    if len(members) > 1:
        print(format_members(members))
    from ibcbench.infra.redis import redis_status

    redis = redis_status(_settings(args))
    if redis is not None:
        print(redis.line())
    return 0


def format_members(members: list[MemberStatus]) -> str:
    """The primary's members (standbys, PgBouncer) as lines for ``ibcbench db status``."""
    lines = []
    for m in members:
        head = f"{m.role + ':':<12} {m.target}  {'running' if m.running else 'NOT RUNNING'}"
        if m.detail:
            head += f" ({m.detail})"
        lines.append(head)
        if m.role == "replica":
            lag = "lag:         " + (
                f"{m.lag_bytes:,} bytes sent-not-replayed"
                if m.lag_bytes is not None
                else "bytes unknown"
            )
            lag += ", " + (
                f"{m.lag_s:.3f} s since the last replayed commit"
                if m.lag_s is not None
                else "seconds unknown"
            )
            if m.replay_lag_s is not None:
                lag += f", replay_lag {m.replay_lag_s:.3f} s"
            lines.append("             " + lag)
            if m.slot:
                lines.append(
                    f"             slot {m.slot}: {'active' if m.slot_active else 'INACTIVE (retains WAL)'},"
                    f" restart_lsn {m.slot_restart_lsn}"
                )
        if m.role == "pgbouncer":
            if m.running and not [p for p in m.pools if p.get("database") != "pgbouncer"]:
                lines.append(
                    "             no pools yet (PgBouncer opens one on a database's first client)"
                )
            for p in m.pools:
                if p.get("database") == "pgbouncer":
                    continue
                lines.append(
                    f"             pool {p.get('database')}/{p.get('user')}: cl_active {p.get('cl_active')},"
                    f" cl_waiting {p.get('cl_waiting')}, sv_active {p.get('sv_active')}, sv_idle {p.get('sv_idle')}"
                )
    return "\n".join(lines)


def _jobs(args: argparse.Namespace) -> int:
    from ibcbench.db import connect, resolve_dsn
    from ibcbench.infra.status import job_schedules, use_scheduler

    with connect(resolve_dsn(args.dsn, _settings(args))) as conn:
        rows = use_scheduler(conn, args.scheduler) if args.scheduler else job_schedules(conn)
    if not rows:
        print(
            "no kit jobs in this database (pg_cron runs in the database named by cron.database_name)"
        )
    for name, scheduler, schedule in rows:
        print(f"{name:40} {scheduler:12} {schedule}")
    return 0
