"""``ibcbench lab``: JupyterLab on a working copy of notebooks/, with the kit's kernel and database."""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    lab = sub.add_parser(
        "lab",
        help="open JupyterLab on a working copy of notebooks/ (runs/lab/notebooks) with the kit's "
        "kernel and database URL; JupyterLab options after --",
    )
    lab.add_argument(
        "--ip",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; another one prints a warning)",
    )
    lab.add_argument("--port", type=int, default=8888, help="port to listen on (default: 8888)")
    lab.add_argument(
        "--no-browser", action="store_true", help="do not open a browser (default: open one)"
    )
    add_dsn_argument(lab)
    lab.add_argument(
        "jupyter_args",
        nargs="*",
        metavar="-- JUPYTER_OPTION",
        help="passed to jupyter-lab as they are, after --, e.g. -- --ServerApp.token=... "
        "(default: none)",
    )
    lab.set_defaults(func=_lab)


def _lab(args: argparse.Namespace) -> int:
    from ibcbench.db import resolve_dsn
    from ibcbench.dsn import describe_dsn
    from ibcbench.settings import explicit_dsn
    from ibcbench.suite.lab import lab_argv, lab_ip, lab_notebooks, listen_warning
    from ibcbench.suite.notebook import ensure_kernel

    extra = list(args.jupyter_args)
    warning = listen_warning(lab_ip(args.ip, extra), args.port)
    if warning:
        print(f"ibcbench: warning: {warning}", file=sys.stderr, flush=True)
    if explicit_dsn(args.dsn) is None:
        from ibcbench.infra.server import LocalServer

        LocalServer().up()
    env = dict(os.environ, DATABASE_URL=resolve_dsn(args.dsn))
    ensure_kernel()
    folder = lab_notebooks()
    how = (
        "copied now from notebooks/"
        if folder.created
        else "kept from before; delete it for a fresh copy of notebooks/"
    )
    exe = os.path.join(sys.prefix, "bin", "jupyter-lab")
    argv = lab_argv(
        exe,
        folder.path,
        ip=args.ip,
        port=args.port,
        open_browser=not args.no_browser,
        extra=extra,
        allow_root=os.geteuid() == 0,
    )
    print(
        f"JupyterLab on {folder.path} ({how}; notebooks/ stays as tracked) with DATABASE_URL for "
        f"{describe_dsn(env['DATABASE_URL'])}",
        flush=True,
    )
    os.execve(exe, argv, env)
    return 0  # not reached
