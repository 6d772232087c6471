"""The ``ibcbench`` command: glue only. Every command is a call into the library.

Each module in :mod:`ibcbench.commands` defines ``register(subparsers)`` and adds its commands with
``set_defaults(func=...)``; ``func(args)`` returns the exit code. A module that adds a benchmark
defines ``register_bench(bench_subparsers)`` instead (or too): ``ibcbench bench NAME``. Errors the kit raises on purpose
(:class:`~ibcbench.errors.IbcbenchError`) become one line on stderr and exit code 1, and so does a
command line the parser refuses (an unknown option, a value of the wrong kind): one line
``ibcbench: error: ...; see `ibcbench CMD --help```, exit code 1 (not argparse's usage block and 2).
Ctrl-C, SIGTERM and SIGHUP stop a command alike (:mod:`ibcbench.signals`): one line saying what was
kept, exit code 128 + the signal's number (130, 143, 129).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from ibcbench import __version__, commands
from ibcbench.dsn import redact_dsn
from ibcbench.errors import DISK_FULL_ERRNOS, IbcbenchError, first_line, write_advice, write_failure
from ibcbench.signals import Stopped, exit_code, stop_on_signals, stop_reason


class Parser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line, like the kit's, pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"ibcbench: error: {redact_dsn(message)}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ibcbench",
        description="Benchmarking kit for an IBC clearing and relayer analytics database "
        "(PostgreSQL + TimescaleDB).",
    )
    parser.add_argument("--version", action="version", version=f"ibcbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench = sub.add_parser("bench", help="benchmark commands that print their figures")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
        if hasattr(module, "register_bench"):
            module.register_bench(bench_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with stop_on_signals():  # SIGTERM and SIGHUP unwind like Ctrl-C
            return int(args.func(args) or 0)
    except IbcbenchError as exc:
        print(f"ibcbench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # an Interrupted says what was kept
        detail = str(exc).strip()
        what = stop_reason(exc) if isinstance(exc, Stopped) else "interrupted"
        print(f"ibcbench: {what}{': ' + detail if detail else ''}", file=sys.stderr)
        return exit_code(exc)
    except Exception as exc:
        line = _disk_full(exc)
        if line is None:
            raise
        print(f"ibcbench: error: {line}", file=sys.stderr)
        return 1


def _disk_full(exc: Exception) -> str | None:
    """A full disk that the command did not turn into an error of its own: one line, not a
    traceback (an OSError ENOSPC/EDQUOT/EFBIG here, PostgreSQL's DiskFull, SQLSTATE 53100, on the
    server)."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        where = exc.filename or "the disk"
        return f"{write_failure(exc, where)}: {write_advice(exc)} and run the command again"
    if getattr(exc, "sqlstate", None) == "53100":
        primary = first_line(exc, "disk full")
        return (
            f"the database server ran out of disk space ({primary}); the statement that needed it "
            "failed and its transaction rolled back: free space on the server's disk and run the "
            "command again"
        )
    return None


if __name__ == "__main__":
    sys.exit(main())
