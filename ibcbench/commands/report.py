"""``ibcbench report RUN [--baseline RUN] [--fail-on regression]``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="(re)build a run's HTML report, optionally against a baseline run"
    )
    p.add_argument(
        "run", help="run id, prefix, folder, or 'latest' (the newest complete run of the notebooks)"
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="another run: every shared number compared by its direction and noise (default: none)",
    )
    p.add_argument(
        "--fail-on",
        choices=["regression"],
        default=None,
        help="exit 1 when a number is worse than the baseline beyond its noise (a CI gate; "
        "default: exit 0 whatever the numbers)",
    )
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from ibcbench.errors import ConfigError
    from ibcbench.metrics import all_metrics
    from ibcbench.results.runs import find_run
    from ibcbench.suite.report import build_report, compare_with_baseline

    if args.fail_on and not args.baseline:
        raise ConfigError("--fail-on regression needs a run to compare with: add --baseline RUN")
    run = find_run(args.run, notebooks=True)  # 'latest': the newest complete notebook run
    run.require_manifest()  # a folder that is not a run gets no report.html
    baseline = find_run(args.baseline) if args.baseline else None
    diff = (
        compare_with_baseline(run, baseline, metrics=all_metrics())
        if baseline is not None
        else None
    )
    path = build_report(run, diff=diff, metrics=all_metrics())
    print(f"report: {path}")
    if diff is None:
        return 0
    print(f"against baseline {diff.baseline}: {diff.summary()}")
    for line in diff.listing():
        print(line)
    failures = diff.failure_lines()
    for line in failures:
        print(line)
    return 1 if failures and args.fail_on == "regression" else 0
