"""``ibcbench plans capture | diff | show``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ibcbench.commands import dataset_scale, non_negative_int


def register(sub: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    plans = sub.add_parser(
        "plans", help="capture EXPLAIN ANALYZE plans and compare them node by node"
    )
    psub = plans.add_subparsers(dest="plans_command", metavar="ACTION", required=True)

    cap = psub.add_parser(
        "capture", help="capture the workload's plans under a named configuration"
    )
    cap.add_argument(
        "--config", required=True, help="configuration name (folder under <run>/plans/)"
    )
    cap.add_argument(
        "--strategy",
        default=None,
        help="index strategy to apply first (none, service, covering, ...; default: the indexes as they are)",
    )
    cap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting, e.g. random_page_cost=1.1 (repeatable; default: none)",
    )
    cap.add_argument(
        "--scale", type=dataset_scale, default="tiny", help="dataset scale (default: tiny)"
    )
    cap.add_argument("--seed", type=non_negative_int, default=42, help="dataset seed (default: 42)")
    cap.add_argument(
        "--run", default=None, help="run folder or id to store into (default: a new run)"
    )
    add_dsn_argument(cap)
    cap.set_defaults(func=_capture)

    diff = psub.add_parser(
        "diff", help="diff two plans: files (.json/.txt), folders of plans, or run ids"
    )
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument(
        "--html",
        type=Path,
        default=None,
        help="also write a side-by-side HTML report here (default: none)",
    )
    diff.set_defaults(func=_diff)

    show = psub.add_parser(
        "show", help="a plan as a tree with inclusive/exclusive times and q-errors"
    )
    show.add_argument("file", type=Path)
    show.set_defaults(func=_show)


def _capture(args: argparse.Namespace) -> int:
    from ibcbench.bench.explain import PlanConfig, capture_configuration
    from ibcbench.bench.workload import workload_queries
    from ibcbench.data.datasets import ensure_dataset_info
    from ibcbench.db import connect
    from ibcbench.errors import ConfigError
    from ibcbench.results.runs import find_run, new_run

    settings = {}
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} must look like name=value")
        k, v = item.split("=", 1)
        settings[k.strip()] = v.strip()
    info = ensure_dataset_info(args.dsn, scale=args.scale, seed=args.seed, quiet=False)
    dsn = info.dsn
    with connect(dsn) as conn:
        queries = workload_queries(conn, seed=args.seed)
    run = find_run(args.run) if args.run else new_run(f"plans-{args.config}")
    if info.state is not None:
        run.update_manifest(dataset=info.state.manifest())
    plans = capture_configuration(
        dsn,
        queries,
        config=PlanConfig(args.config, args.strategy, settings),
        out_dir=run.path / "plans",
    )
    if not args.run:
        run.update_manifest(status="complete")
    if args.strategy and args.strategy != "service":
        from ibcbench.bench.indexes import apply_strategy

        apply_strategy(dsn, "service")
    for name, plan in plans.items():
        print(f"{name:<28} {plan.total_ms:>9.3f} ms  {plan.root.label}")
    print(f"plans: {run.path / 'plans' / args.config}")
    return 0


def _resolve(ref: str) -> Path:
    path = Path(ref)
    if path.exists():
        return path
    from ibcbench.results.runs import find_run

    run = find_run(ref)
    configs = (
        sorted(p for p in (run.path / "plans").iterdir() if p.is_dir())
        if (run.path / "plans").is_dir()
        else []
    )
    if len(configs) != 1:
        from ibcbench.errors import PlanError

        raise PlanError(
            f"run {run.id} holds {len(configs)} plan configurations: pass the folder itself"
        )
    return configs[0]


def _diff(args: argparse.Namespace) -> int:
    from ibcbench.plans import (
        diff_plan_sets,
        diff_plans,
        format_diff_text,
        load_plan,
        load_plans,
        render_diff_html,
    )

    a, b = _resolve(args.a), _resolve(args.b)
    if a.is_dir() or b.is_dir():
        result = diff_plan_sets(load_plans(a), load_plans(b), names=(a.name, b.name))
        print(result.summary().to_string(index=False))
        for name, d in result.diffs.items():
            if not d.is_empty:
                print(f"\n== {name}\n{format_diff_text(d, limit=8)}")
        html_doc = render_diff_html(result, title=f"{a.name} vs {b.name}", standalone=True)
    else:
        d = diff_plans(load_plan(a), load_plan(b))
        print(format_diff_text(d))
        html_doc = render_diff_html(d, title=f"{a.name} vs {b.name}", standalone=True)
    if args.html:
        args.html.write_text(html_doc)
        print(f"html: {args.html}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from ibcbench.plans import format_plan_text, load_plan

    plan = load_plan(args.file)
    print(format_plan_text(plan))
    worst = plan.worst_estimates(3)
    if worst:
        print("worst estimates: " + "; ".join(f"{n.label} q={q:.1f}" for n, q in worst))
    return 0
