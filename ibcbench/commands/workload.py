"""``ibcbench bench fidelity``, ``ibcbench bench workload`` and ``ibcbench compare``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ibcbench.commands import (
    MAX_LIST_ITEM,
    count_at_most,
    dataset_scale,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_ints,
    seconds,
)

if TYPE_CHECKING:
    from ibcbench.bench.workload import Workload
    from ibcbench.bench.workload.summary import WorkloadResult
    from ibcbench.data.datasets import DatasetInfo
    from ibcbench.results.runs import Run


def register(sub: argparse._SubParsersAction) -> None:
    cmp_ = sub.add_parser(
        "compare",
        help="compare two runs' workload latencies (ratio + block-bootstrap CI per query)",
    )
    cmp_.add_argument("baseline", help="a run id or folder; repetitions: several, comma-separated")
    cmp_.add_argument("candidate", help="a run id or folder; repetitions: several, comma-separated")
    cmp_.add_argument(
        "--name", default="workload", help="result name in the run folders (default: workload)"
    )
    cmp_.set_defaults(func=_compare)


def register_bench(bench: argparse._SubParsersAction) -> None:
    """``bench fidelity``, ``bench capacity`` and ``bench workload``."""
    _register_fidelity(bench)
    _register_capacity(bench)
    _register_workload(bench)


def _add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """--scale and --seed: the dataset a benchmark runs on, loaded if missing."""
    parser.add_argument(
        "--scale",
        type=dataset_scale,
        default="small",
        help="dataset scale, loaded if missing (default: small)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=42, help="dataset seed (default: 42)"
    )


def _register_fidelity(bench: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    fid = bench.add_parser(
        "fidelity",
        help="one query through the Python runner, the pgx runner and pgbench: QPS and ratios",
    )
    fid.add_argument(
        "--clients",
        type=positive_ints,
        default=(1, 4, 8, 16),
        help="comma-separated client counts (default: 1,4,8,16)",
    )
    fid.add_argument("--duration", type=seconds, default=10.0, help="seconds per run (default: 10)")
    fid.add_argument(
        "--query",
        default="packet_by_channel_sequence",
        help="a workload query name (default: packet_by_channel_sequence)",
    )
    _add_dataset_arguments(fid)
    add_dsn_argument(fid)
    fid.set_defaults(func=_fidelity)


def _register_capacity(bench: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    cap = bench.add_parser(
        "capacity",
        help="pool sizes on the server side: pgbench -c N (closed) and -R (wait), Python beside it",
    )
    cap.add_argument(
        "--sizes",
        type=positive_ints,
        default=(1, 2, 4, 8, 25),
        help="comma-separated pool sizes / pgbench -c (default: 1,2,4,8,25)",
    )
    cap.add_argument(
        "--rate",
        type=positive_float,
        default=None,
        help="arrival rate for the wait (default: half the best pgbench throughput)",
    )
    cap.add_argument(
        "--engines",
        default="pgbench,python",
        help="pgbench and/or python (default: pgbench,python)",
    )
    cap.add_argument("--duration", type=seconds, default=3.0, help="seconds per run (default: 3)")
    cap.add_argument(
        "--figure", default=None, help="save both engines' figure to this file (default: none)"
    )
    _add_dataset_arguments(cap)
    add_dsn_argument(cap)
    cap.set_defaults(func=_capacity)


def _register_workload(bench: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    wl = bench.add_parser(
        "workload",
        help="run the workload mix and save it into a run folder",
        description="Run the workload mix and save it into a run folder. A request that fails on a "
        "lost connection, the pool's timeout, a serialization failure or a deadlock is tried again "
        "(--max-tries); a run in which any request failed after its tries or was retried (a "
        "server restart, terminated backends) is kept with its errors, retries and longest outage "
        "in its manifest, marked failed (`report latest` skips it), and the command exits 1 with "
        "one line saying so; pgbench clients that lose their connection abort, and the command "
        "exits 1 with one line, recording nothing. The Python runner ends within warm-up + "
        "duration + --pool-timeout (+ the drain of an open loop) and a few seconds.",
    )
    _add_runner_arguments(wl)
    _add_dataset_arguments(wl)
    wl.add_argument(
        "--queries",
        default=None,
        help="comma-separated subset of the workload (default: every query)",
    )
    wl.add_argument(
        "--repeat",
        type=count_at_most(1_000),
        default=1,
        help="run folders to make, one after the other (5+ give compare run-to-run intervals; "
        "default: 1)",
    )
    add_dsn_argument(wl)
    wl.set_defaults(func=_workload)


def _add_runner_arguments(wl: argparse.ArgumentParser) -> None:
    """How ``bench workload`` drives the server: engine, clients, window, retries, arrival rate."""
    wl.add_argument(
        "--engine",
        choices=["python", "pgx", "pgbench"],
        default="pgbench",
        help="pgbench (the server), python (psycopg_pool) or pgx (pgx v4's pgxpool, the "
        "service's client; built by scripts/install-system.sh) (default: pgbench)",
    )
    wl.add_argument(
        "--statement-cache",
        type=non_negative_int,
        default=512,
        help="pgx: statement_cache_capacity (default: 512; 0: the simple protocol)",
    )
    wl.add_argument(
        "--clients",
        type=count_at_most(MAX_LIST_ITEM),
        default=4,
        help="concurrent clients (default: 4)",
    )
    wl.add_argument("--duration", type=seconds, default=10.0, help="seconds (default: 10)")
    wl.add_argument(
        "--warmup",
        type=non_negative_float,
        default=2.0,
        help="seconds before the measured window (default: 2)",
    )
    wl.add_argument(
        "--max-tries",
        type=count_at_most(1_000),
        default=3,
        help="tries per request in all, as pgbench's --max-tries (default: 3; 1: no retries)",
    )
    wl.add_argument(
        "--pool-timeout",
        type=seconds,
        default=30.0,
        help="Python runner: seconds a try waits for a pool connection (default: 30)",
    )
    wl.add_argument(
        "--rate",
        type=positive_float,
        default=None,
        help="open loop at this many queries/s in total (default: closed loop, as fast as answered)",
    )


def _fidelity(args: argparse.Namespace) -> int:
    from ibcbench.bench.workload import default_workload
    from ibcbench.bench.workload.engines import run_fidelity
    from ibcbench.data.datasets import ensure_dataset

    default_workload().subset([args.query])  # an unknown query is refused before any work
    dsn = ensure_dataset(args.dsn, scale=args.scale, seed=args.seed, quiet=False)
    result = run_fidelity(
        dsn, query=args.query, clients=args.clients, duration_s=args.duration, seed=args.seed
    )
    print(f"fidelity: {args.query} at scale {args.scale}, {args.duration:g} s per run")
    print(result.frame.to_string(index=False))
    for engine, reason in result.not_available.items():
        print(f"{engine}: not available ({reason})")
    if result.frame.client_bound.any():
        print(
            "client_bound: the Python process used >= 70% of a core, or ran at half or more of its own "
            "SELECT 1 rate (python_select1_qps); those rows measure the client, not the server"
        )
    return 0


def _capacity(args: argparse.Namespace) -> int:
    from ibcbench.bench.poolcapacity import plot_capacity, sweep_pool_capacity
    from ibcbench.data.datasets import ensure_dataset
    from ibcbench.errors import BenchmarkError

    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    if not engines or set(engines) - {"pgbench", "python"}:
        raise BenchmarkError(f"--engines {args.engines!r}: give pgbench, python or pgbench,python")
    dsn = ensure_dataset(args.dsn, scale=args.scale, seed=args.seed, quiet=False)
    result = sweep_pool_capacity(
        dsn,
        max_sizes=args.sizes,
        rate_qps=args.rate,
        engines=engines,
        duration_s=args.duration,
        seed=args.seed,
    )
    print(
        f"pool capacity: read mix at scale {args.scale}, {args.duration:g} s per run; wait = "
        f"arrival to a free connection at {result.rate_qps:g} queries/s"
    )
    print(result.frame.to_string(index=False))
    print(
        ", ".join(
            f"{e} knee (95% of its best throughput): {result.knee(engine=e)} connections"
            for e in engines
        )
    )
    if args.figure:
        plot_capacity(result).savefig(args.figure, dpi=110)
        print(f"figure: {args.figure}")
    return 0


def _workload(args: argparse.Namespace) -> int:
    from ibcbench.bench.workload import default_workload
    from ibcbench.data.datasets import ensure_dataset_info
    from ibcbench.errors import BenchmarkError
    from ibcbench.results.runs import check_runs_root

    if args.repeat < 1:
        raise BenchmarkError(f"--repeat must be at least 1, not {args.repeat}")
    if args.engine == "pgx":
        from ibcbench.bench.workload.pgx import find_pgx_runner

        find_pgx_runner()  # a missing runner is one line before any work
    check_runs_root()  # a full runs folder fails now, not after the workload ran
    wl = default_workload().subset(args.queries.split(",") if args.queries else None)
    info = ensure_dataset_info(args.dsn, scale=args.scale, seed=args.seed, quiet=False)
    ids = [_workload_once(args, info, wl).id for _ in range(args.repeat)]
    if len(ids) > 1:
        print(f"runs (compare them as one side): {','.join(ids)}")
    return 0


def _workload_once(args: argparse.Namespace, info: DatasetInfo, wl: Workload) -> Run:
    """One run of the workload into a new run folder; a disturbed run is saved marked failed and
    raises :class:`BenchmarkError` after its figures are printed."""
    from ibcbench.bench.workload.engines import run_workload
    from ibcbench.errors import BenchmarkError

    result = run_workload(
        info.dsn,
        wl,
        engine=args.engine,
        clients=args.clients,
        duration_s=args.duration,
        warmup_s=args.warmup,
        rate_qps=args.rate,
        seed=args.seed,
        max_tries=args.max_tries,
        pool_timeout_s=args.pool_timeout,
        statement_cache=args.statement_cache,
    )
    run, trouble = _save_run(args, info, result)
    print(result.summary.to_string(index=False))
    if trouble:
        print("client_bound: not judged (the run had errors or retries)")
        raise BenchmarkError(
            f"the run was disturbed: {trouble}; its figures are not healthy, run folder "
            f"{run.path} is marked failed"
        )
    _print_run_notes(result)
    print(f"run folder: {run.path}")
    return run


def _save_run(
    args: argparse.Namespace, info: DatasetInfo, result: WorkloadResult
) -> tuple[Run, str | None]:
    """The run folder with the result and its manifest, and what disturbed the run (None if
    nothing); a server still away after a disturbed run leaves the manifest without its part."""
    from ibcbench.errors import IbcbenchError
    from ibcbench.results.runs import build_manifest, started_run

    trouble = result.trouble()
    with started_run(f"workload-{args.engine}") as run:
        # the figures first: a server still away for the manifest leaves them in a failed run
        result.save(run)
        if trouble:
            run.update_manifest(
                status="failed",
                error=f"the run was disturbed: {trouble}",
                errors=result.errors,
                retries=result.retries,
                unavailable_s=result.unavailable_s,
            )
        try:
            run.update_manifest(
                **build_manifest(
                    info.dsn,
                    seed=args.seed,
                    scale=args.scale,
                    parameters=vars(args) | {"func": None},
                    dataset=info.state.manifest() if info.state else None,
                )
            )
        except IbcbenchError as exc:
            if not trouble:
                raise
            # the server is still away: the run says so, without the server's part
            unreachable = f"the server was unreachable after the run ({exc})"
            run.update_manifest(manifest_error=unreachable)
            trouble = f"{trouble}; {unreachable.split(' (')[0]}"
    return run, trouble


def _print_run_notes(result: WorkloadResult) -> None:
    """What qualifies a healthy run's figures: a client-bound runner, an open loop's schedule."""
    if result.client_bound:
        floor = (
            f" and ran at {result.client_floor_share} of its own SELECT 1 rate"
            if result.client_floor_share is not None
            else ""
        )
        print(
            f"client_bound: the {result.engine} runner used {result.client_cpu_pct}% of a core{floor}: "
            "it, not the server, is the limit"
        )
    if result.open_loop:
        ol = result.open_loop
        scheduled = (
            f"{ol['scheduled']} scheduled, "
            if "scheduled" in ol
            else f"about {ol['expected']} due (rate x duration; pgbench stops at -T), "
        )
        backlog = (
            f", {ol['backlog_at_stop']} still unsent when the window ended (drained in "
            f"{ol['drain_s']} s), {ol['not_issued']} not issued"
            if "backlog_at_stop" in ol
            else ""
        )
        print(
            f"open loop: {scheduled}{ol['issued']} issued, {ol['late']} late (sent > 1 ms after "
            f"their scheduled start){backlog}; latencies count from the scheduled start"
        )


def _compare(args: argparse.Namespace) -> int:
    from ibcbench.results.compare import compare_runs
    from ibcbench.results.runs import find_run

    baseline = [find_run(ref) for ref in args.baseline.split(",") if ref]
    candidate = [find_run(ref) for ref in args.candidate.split(",") if ref]
    result = compare_runs(baseline, candidate, name=args.name)
    print(
        f"{result.candidate} vs {result.baseline} (ratio = candidate / baseline median latency; "
        "95% CI from a bootstrap over blocks of time, or over runs when 5 or more are given)"
    )
    print(result.frame.to_string(index=False))
    held = int(((result.frame.ci_low <= 1) & (result.frame.ci_high >= 1)).sum())
    print(f"{held} of {len(result.frame)} intervals hold 1 (no difference)")
    if min(len(baseline), len(candidate)) < 5:
        print(
            "note: blocks of time within a run cover its own drift, not the run-to-run variance; "
            "for that give 5 or more runs a side (bench workload --repeat 5)"
        )
    return 1 if len(result.regressions) else 0
