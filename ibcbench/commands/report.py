"""``ibcbench report RUN [--baseline RUN]``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="(re)build a run's HTML report, optionally against a baseline run"
    )
    p.add_argument("run", help="run id, prefix, folder, or 'latest'")
    p.add_argument(
        "--baseline", default=None, help="another run: ratios per number, regressions flagged"
    )
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from ibcbench.results.runs import find_run
    from ibcbench.suite.report import build_report

    run = find_run(args.run)
    path = build_report(run, baseline=find_run(args.baseline) if args.baseline else None)
    print(f"report: {path}")
    return 0
