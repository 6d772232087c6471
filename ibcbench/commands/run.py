"""``ibcbench run NOTEBOOK`` and ``ibcbench run-all`` (``ibcbench lab``: :mod:`.lab`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ibcbench.commands import dataset_scale, non_negative_int

if TYPE_CHECKING:
    from ibcbench.results.runs import Run


def register(sub: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    run = sub.add_parser("run", help="run one notebook with papermill into a new run folder")
    run.add_argument("notebook", help="a notebook path, or the name of one in notebooks/")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="notebook parameter (JSON values are parsed: 3, 0.5, true, null, [1,2]; repeatable; "
        "default: the notebook's own)",
    )
    run.add_argument(
        "--label", default=None, help="run folder label (default: the notebook's name)"
    )
    _no_wait_argument(run)
    add_dsn_argument(run)
    run.set_defaults(func=_run)

    run_all = sub.add_parser(
        "run-all", help="run the numbered notebooks in order into one run folder + report"
    )
    run_all.add_argument(
        "--scale",
        type=dataset_scale,
        default="tiny",
        help="dataset scale: tiny, small, default, large (default: tiny, about a minute; the main "
        "job, scripts/bench, runs --scale default: 1.2M packets)",
    )
    run_all.add_argument(
        "--seed", type=non_negative_int, default=42, help="dataset seed (default: 42)"
    )
    run_all.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="extra parameter passed to every notebook (repeatable; default: none)",
    )
    run_all.add_argument(
        "--notebooks",
        default=None,
        help="comma-separated numbers or names of the notebooks to run (default: every benchmark "
        "notebook, not 08_faults, the kit's fault suite, which runs when named or as "
        "`ibcbench bench faults`; e.g. 01,02,04)",
    )
    _no_wait_argument(run_all)
    add_dsn_argument(run_all)
    run_all.set_defaults(func=_run_all)


def _no_wait_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="one run at a time per server (runs share its datasets): while another `run` or "
        "`run-all` works, refuse at once instead of waiting for it (a line on stderr names it)",
    )


def _waiting(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _params(pairs: list[list[str]]) -> dict[str, object]:
    from ibcbench.suite.parameters import parse_parameter

    return {key: parse_parameter(value) for key, value in pairs}


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ibcbench.suite.parameters import validate_parameters

    params = _params(args.parameter)
    if args.dsn:
        params["dsn"] = args.dsn
    validate_parameters(args.notebook, params)  # before a run folder exists (and pandas)
    if args.label is not None:
        from ibcbench.inputs import check_name

        check_name(args.label, "run label")

    from ibcbench.results.runs import build_manifest, started_run
    from ibcbench.suite.notebook import notebook_entry, run_notebook
    from ibcbench.suite.progress import NotebookProgress
    from ibcbench.suite.runlock import run_lock

    with (
        run_lock(params.get("dsn"), wait=not args.no_wait, on_wait=_waiting) as lock,  # type: ignore[arg-type]
        started_run(args.label or Path(args.notebook).stem) as run,
        _marked_if_stopped(run),
    ):
        lock.name_run(run.id)
        run.update_manifest(
            **build_manifest(
                params.get("dsn"),  # type: ignore[arg-type]
                seed=params.get("seed"),  # type: ignore[arg-type]
                scale=params.get("scale"),  # type: ignore[arg-type]
                parameters=params,
            )
        )
        _check_timescaledb(params.get("dsn"), run)  # type: ignore[arg-type]
        result = run_notebook(args.notebook, run, params, progress=NotebookProgress())
        run.update_manifest(notebooks=[notebook_entry(result)])
        if result.dataset is not None:
            run.update_manifest(dataset=result.dataset)
        if not result.ok:
            run.update_manifest(status="failed", error=result.error)
    for key, value in result.recorded.items():
        print(f"{key}: {value}")
    if not result.ok:
        print(
            f"ibcbench: error: {result.notebook} failed: {result.error}; see {result.output}",
            file=sys.stderr,
        )
        return 1
    print(f"executed notebook: {result.output}")
    print(f"run folder: {run.path}")
    return 0


def _run_all(args: argparse.Namespace) -> int:
    from ibcbench.suite.parameters import validate_run_all

    extra = _params(args.parameter)
    chosen = _chosen_notebooks(args.notebooks)
    # before a run folder exists (and pandas)
    notebooks = validate_run_all(args.scale, args.seed, extra, chosen)

    from ibcbench.metrics import all_metrics
    from ibcbench.results.runs import started_run
    from ibcbench.suite.notebook import run_all
    from ibcbench.suite.progress import NotebookProgress
    from ibcbench.suite.runlock import run_lock

    progress = NotebookProgress()
    with (
        run_lock(args.dsn, wait=not args.no_wait, on_wait=_waiting) as lock,
        started_run(f"all-{args.scale}") as run,
        _marked_if_stopped(run),
    ):
        lock.name_run(run.id)
        _check_timescaledb(args.dsn, run)
        result = run_all(
            run,
            scale=args.scale,
            seed=args.seed,
            dsn=args.dsn,
            extra=extra,
            notebooks=notebooks,
            progress=progress,
            metrics=all_metrics(),
        )
    print(progress.summary())
    print(f"run-all finished in {result.elapsed_s:.0f} s")
    failed = [nb for nb in result.notebooks if not nb.ok]
    for nb in failed:
        print(
            f"ibcbench: error: {nb.notebook} failed: {nb.error}; see {nb.output}", file=sys.stderr
        )
    print(f"run folder: {run.path}")
    if result.report is not None:
        print(f"report: {result.report}")
    return 1 if failed else 0


@contextlib.contextmanager
def _marked_if_stopped(run: Run) -> Iterator[None]:
    """Ctrl-C, SIGTERM or SIGHUP during a run: the notebook's kernel has been shut down as the
    interrupt unwound papermill; the manifest says ``interrupted`` and why, the CLI's one line says
    what was kept, and the run lock goes with its session after this block."""
    from ibcbench.signals import restopped, stop_reason

    try:
        yield
    except KeyboardInterrupt as exc:
        if [p.name for p in run.path.iterdir()] == ["manifest.json"]:  # the folder goes
            raise restopped(exc, f"nothing was kept (run {run.id} had not begun)") from None
        run.update_manifest(status="interrupted", error=stop_reason(exc))
        raise restopped(
            exc, f"run {run.id} is marked interrupted; what it wrote is kept in {run.path}"
        ) from None


def _chosen_notebooks(text: str | None) -> list[Path] | None:
    """``--notebooks 01,02_index_strategies``: the numbered notebooks named by number or name."""
    from ibcbench.errors import ConfigError
    from ibcbench.suite.notebook import numbered_notebooks

    if text is None:
        return None
    every = numbered_notebooks()
    chosen: list[Path] = []
    for item in (x.strip().removesuffix(".ipynb") for x in text.split(",") if x.strip()):
        found = [nb for nb in every if nb.stem == item or nb.stem.split("_", 1)[0] == item]
        if not found:
            raise ConfigError(
                f"--notebooks: no numbered notebook {item!r}: use one of "
                f"{', '.join(nb.stem for nb in every)}"
            )
        chosen.extend(nb for nb in found if nb not in chosen)
    if not chosen:
        raise ConfigError("--notebooks is empty: give one or more, e.g. 01,02")
    return sorted(chosen)


def _check_timescaledb(dsn: str | None, run: Run) -> None:
    """Record the kit's TimescaleDB beside the server's in the manifest, and say in one line on
    stderr when an external server's differs."""
    from ibcbench.db import connect, resolve_dsn, server_info
    from ibcbench.infra.status import KIT_TIMESCALEDB_VERSION, timescaledb_mismatch
    from ibcbench.settings import explicit_dsn

    with connect(resolve_dsn(dsn)) as conn:
        info = server_info(conn)
    mismatch = timescaledb_mismatch(info, embedded=explicit_dsn(dsn) is None)
    run.update_manifest(
        # the database's, else the server's default where the database has no TimescaleDB yet
        timescaledb_version=info.timescaledb_version
        or info.available_extensions.get("timescaledb"),
        timescaledb_kit_version=KIT_TIMESCALEDB_VERSION,
        timescaledb_warning=mismatch,
    )
    if mismatch:
        print(f"ibcbench: warning: {mismatch}", file=sys.stderr, flush=True)
