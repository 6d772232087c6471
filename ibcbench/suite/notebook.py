"""Notebooks: run them with papermill into a run folder (one, or the whole suite and its report).

What a notebook records is read back with :func:`ibcbench.results.recorded.read_recorded`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ibcbench.errors import IbcbenchError
from ibcbench.results.metrics import Metric
from ibcbench.results.recorded import read_recorded
from ibcbench.results.runs import Run
from ibcbench.signals import stop_reason
from ibcbench.suite.budget import (
    result_tables,
    tables_written,
    time_parameters,
    widest_interval,
)
from ibcbench.suite.parameters import (
    KIT_PARAMETERS,
    notebook_parameters,
    notebooks_dir,
    numbered_notebooks,
    parse_parameter,
    validate_parameters,
    validate_run_all,
)
from ibcbench.suite.progress import Estimate, NotebookProgress, code_cells, last_estimate
from ibcbench.suite.report import build_report

__all__ = [
    "KIT_PARAMETERS",
    "NotebookResult",
    "RunAllResult",
    "ensure_kernel",
    "notebook_entry",
    "notebook_parameters",
    "notebooks_dir",
    "numbered_notebooks",
    "parse_parameter",
    "run_all",
    "run_notebook",
    "validate_parameters",
    "validate_run_all",
]

#: larger settings for the notebooks when run-all runs beyond the tiny scale (notebook defaults are CI-sized)
FULL_SCALE_PARAMETERS: dict[str, dict[str, Any]] = {
    "02_index_strategies.ipynb": {"repetitions": 300},
    "03_pool_settings.ipynb": {
        "max_sizes": [1, 2, 4, 8, 16, 25],
        "clients": [1, 4, 16, 32],
        "duration_s": 3.0,
    },
}
KERNEL_NAME = "ibcbench"


def ensure_kernel() -> str:
    """Install the ``ibcbench`` Jupyter kernel (this interpreter) into this environment if missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="ibcbench", prefix=sys.prefix)
    return KERNEL_NAME


@dataclass(frozen=True)
class NotebookResult:
    notebook: str
    output: Path
    elapsed_s: float
    recorded: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    #: the state the notebook found its dataset in (the manifest's ``dataset``), when it has one
    dataset: dict[str, Any] | None = None
    #: its time-related parameters as it ran with them (None: it has none)
    budget: dict[str, Any] | None = None
    #: the widest interval among what it recorded and the result tables it wrote (None: none)
    widest_interval: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_notebook(
    notebook: Path | str,
    run: Run,
    parameters: Mapping[str, Any] | None = None,
    *,
    progress: NotebookProgress | None = None,
) -> NotebookResult:
    """Execute ``notebook`` with papermill into the run folder; failures are returned, not raised.

    ``progress`` is told when the notebook starts, each cell it enters, and when it ends, with the
    time it took in the last run on the same server at the same scale (:func:`last_estimate`).

    Like papermill, a failed notebook is still written (with the error in place) and its path returned.
    A server that restarted while the notebook ran (its ``pg_postmaster_start_time()`` moved) or
    that cannot be reached after it fails the notebook too, even when every cell ran: its figures
    span an outage (the error says so).
    """
    source = validate_parameters(notebook, parameters or {}, unknown_ok=True)
    dataset = _dataset_before(source, parameters or {})
    output = run.path / source.name
    params, secret = _kernel_parameters(run, parameters)
    started_at = server_started_at(secret)
    tables_before = result_tables(run.path / "results")
    if progress is not None:
        progress.start(source.name, code_cells(source) + 1, _estimate(source, run, params))
    started = time.perf_counter()
    try:
        error = _execute(source, output, run, params, secret, progress)
    finally:
        if progress is not None:
            progress.close()
    elapsed = time.perf_counter() - started
    outage = _outage(source, secret, started_at)
    if outage:
        error = f"{error} ({outage})" if error else outage
    recorded = read_recorded(output) if output.exists() else {}
    if dataset is not None and dataset.get("state") == "absent":
        dataset = _dataset_after(source, parameters or {}) or dataset
    if progress is not None:
        progress.finish(elapsed, error is None, error)
    written = tables_written(run.path / "results", tables_before)
    return NotebookResult(
        source.name,
        output,
        elapsed,
        recorded,
        error,
        dataset,
        budget=time_parameters(notebook_parameters(source), params),
        widest_interval=widest_interval(recorded, written),
    )


def _kernel_parameters(
    run: Run, parameters: Mapping[str, Any] | None
) -> tuple[dict[str, Any], str | None]:
    """The parameters the notebook gets, and the DSN kept out of them.

    A DSN (and its password) never goes into the executed notebook as a parameter: the kernel reads
    it from DATABASE_URL, which it inherits from this process while it starts (:func:`_execute`)."""
    params = {"run_dir": str(run.path), **dict(parameters or {})}
    secret = params.get("dsn")
    if isinstance(secret, str) and secret:
        params["dsn"] = None
        return params, secret
    return params, None


def _execute(
    source: Path,
    output: Path,
    run: Run,
    params: dict[str, Any],
    secret: str | None,
    progress: NotebookProgress | None,
) -> str | None:
    """papermill on the kit's kernel, its connection file and sockets in a private folder (0700,
    removed after it), ``secret`` in DATABASE_URL while it starts; the failed cell's error or None."""
    import papermill as pm

    runtime = Path(tempfile.mkdtemp(prefix="ibcbench-kernel-"))
    saved = os.environ.get("DATABASE_URL")
    if secret:
        os.environ["DATABASE_URL"] = secret
    try:
        pm.execute_notebook(
            str(source),
            str(output),
            parameters=params,
            kernel_name=ensure_kernel(),
            cwd=str(run.path),
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=True,
            kernel_manager_class=_local_kernel_manager(
                run.subdir("logs") / f"{source.stem}.kernel.log", runtime
            ),
            **(progress.hooks() if progress is not None else {}),
        )
    except pm.PapermillExecutionError as exc:
        return f"{exc.ename}: {str(exc.evalue).splitlines()[0] if exc.evalue else ''}".strip()
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
        if secret:
            if saved is None:
                os.environ.pop("DATABASE_URL", None)
            else:
                os.environ["DATABASE_URL"] = saved
    return None


def _outage(source: Path, secret: str | None, started_at: Any) -> str | None:
    """Why the notebook's figures span an outage (the server restarted or cannot be reached after
    it ran), or None."""
    if started_at is None:
        return None
    # a failed cell may have met a server that is still coming back: give it a few seconds
    now_started_at = server_started_at(secret, wait_s=RESTART_WAIT_S)
    if now_started_at is None:
        return f"the server was unreachable after {source.name} ran"
    if now_started_at != started_at:
        return (
            f"the server restarted while {source.name} ran (up again since {now_started_at}): "
            "its figures span an outage"
        )
    return None


def _estimate(source: Path, run: Run, params: Mapping[str, Any]) -> Estimate | None:
    """The time ``source`` took in the last run on this server at this scale (None: no such run)."""
    try:
        manifest = run.manifest()
    except IbcbenchError:
        return None
    default = notebook_parameters(source).get("scale")
    default = default if isinstance(default, str) else None
    scale = params.get("scale") or default
    return last_estimate(
        source.name,
        run.path.parent,
        target=manifest.get("target"),
        scale=scale if isinstance(scale, str) else None,
        default_scale=default,
        exclude=run.id,
    )


def _dataset_params(source: Path, parameters: Mapping[str, Any]) -> tuple[Any, str, int] | None:
    """(dsn, scale, seed) of the dataset a notebook uses: one with ``scale`` and ``seed``
    parameters calls ``ensure_dataset`` with them (the kit's notebooks all do)."""
    defaults = notebook_parameters(source)
    if "scale" not in defaults or "seed" not in defaults:
        return None
    scale = parameters.get("scale", defaults["scale"])
    seed = parameters.get("seed", defaults["seed"])
    if not isinstance(scale, str) or not isinstance(seed, int):
        return None
    return parameters.get("dsn") or None, scale, seed


def _dataset_before(source: Path, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
    """Check (and repair, or refuse) the notebook's dataset before it runs, as ``ensure_dataset``
    would: what is measured runs on the clean dataset, and the manifest says what was found."""
    from ibcbench.data.datasets import dataset_database_name, find_dataset

    chosen = _dataset_params(source, parameters)
    if chosen is None:
        return None
    dsn, scale, seed = chosen
    info = find_dataset(dsn, scale=scale, seed=seed)
    if info is None or info.state is None:  # not built yet: the notebook builds it
        return {"name": dataset_database_name(scale, seed), "state": "absent"}
    return info.state.manifest()


def _dataset_after(source: Path, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
    """The dataset a notebook built (it had none before it ran)."""
    from ibcbench.data.datasets import find_dataset

    chosen = _dataset_params(source, parameters)
    if chosen is None:
        return None
    dsn, scale, seed = chosen
    try:
        info = find_dataset(dsn, scale=scale, seed=seed, report=None)
    except Exception:  # the notebook failed half-way: the next use says what it finds
        return None
    if info is None or info.state is None:
        return None
    return info.state.manifest() | {"created": True}


#: after a notebook, seconds to wait for a server that is unreachable (restarting) before saying so
RESTART_WAIT_S = 15.0


def server_started_at(dsn: str | None = None, *, wait_s: float = 0.0) -> str | None:
    """The server's ``pg_postmaster_start_time()`` (ISO text), or None when it cannot be reached
    (tried again for up to ``wait_s`` seconds): a changed value means the server restarted."""
    import psycopg

    from ibcbench.db import connect
    from ibcbench.errors import IbcbenchError

    deadline = time.monotonic() + wait_s
    while True:
        try:
            with connect(dsn, connect_timeout=5) as conn:
                row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
            return row[0].isoformat() if row else None
        except (IbcbenchError, psycopg.Error, OSError):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)


def _local_kernel_manager(log: Path, runtime: Path) -> type:
    """papermill's kernel manager on unix sockets: the kernel never listens on TCP (and ipykernel
    has no reason to warn that it does so unencrypted). The kernel's own output goes to ``log``, not
    to this command's stderr: a kernel stopped while a cell fails logs its KeyboardInterrupt there,
    and the command's error stays one line (the notebook's error is in the executed notebook).

    Its connection file and sockets go into ``runtime``, a private folder the caller removes. Left
    to itself, jupyter_client names the sockets after the connection file, which is not chosen yet
    when the sockets' address is (it is a ``mkstemp`` file later), so they were the relative
    ``kernel-ipc-N``: in the kernel's working directory, the run folder (papermill's ``cwd``), where
    a command killed before its cleanup left them."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, Unicode

    class LocalKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
        connection_file = Unicode(str(runtime / "kernel.json"), config=True)
        ip = Unicode(str(runtime / "kernel-ipc"), config=True)

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            with open(log, "ab") as out:  # the kernel keeps its own copy of the descriptor
                kw.update(stdout=out, stderr=out)
                await super()._async_launch_kernel(kernel_cmd, **kw)

        async def shutdown_kernel(  # type: ignore[override]  # the async manager's is a coroutine
            self, now: bool = False, restart: bool = False
        ) -> None:
            await _settle_other_tasks()
            await self._async_shutdown_kernel(now=now, restart=restart)

    return LocalKernelManager


async def _settle_other_tasks() -> None:
    """Cancel the tasks left waiting in papermill's event loop. An interrupt (Ctrl-C, SIGTERM) that
    stops the loop leaves the running cell's task pending; while the kernel shuts down it would wake
    up to a dead kernel and log ``Kernel died`` and a traceback under the command's one line. After
    a notebook that ran to its end there are none."""
    import asyncio

    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


@dataclass(frozen=True)
class RunAllResult:
    run: Run
    notebooks: list[NotebookResult]
    report: Path | None
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return all(nb.ok for nb in self.notebooks)


def run_all(
    run: Run,
    *,
    scale: str = "tiny",
    seed: int = 42,
    dsn: str | None = None,
    notebooks: Sequence[Path] | None = None,
    extra: Mapping[str, Any] | None = None,
    echo: bool = True,
    progress: NotebookProgress | None = None,
    metrics: Mapping[str, Metric] | None = None,
) -> RunAllResult:
    """Run the numbered notebooks in order into ``run``, then build its report (``metrics``:
    :func:`ibcbench.metrics.all_metrics` in the kit, the key numbers' units).

    ``notebooks`` None runs every benchmark notebook (not the kit's own checks: the fault suite runs
    only when named). A failing notebook does not stop the others; the result says which failed.
    ``progress`` shows each notebook as it runs (``echo`` without one: a :class:`NotebookProgress`
    on this process's streams; its ``summary()`` is the table of them all).
    """
    from ibcbench.results.runs import build_manifest

    chosen = validate_run_all(scale, seed, extra, notebooks)
    params: dict[str, Any] = {"scale": scale, "seed": seed, "dsn": dsn, **dict(extra or {})}
    run.update_manifest(**build_manifest(dsn, seed=seed, scale=scale, parameters=params))
    started = time.perf_counter()
    results: list[NotebookResult] = []
    if progress is None and echo:
        progress = NotebookProgress()
    nb = chosen[0]
    try:
        for nb in chosen:
            # an extra parameter goes to the notebooks that have it (papermill warns on stderr of
            # any other); the kit's own go to every notebook
            known = notebook_parameters(nb)
            nb_params = {k: v for k, v in params.items() if k in known or k in KIT_PARAMETERS}
            if scale != "tiny":
                nb_params = {**FULL_SCALE_PARAMETERS.get(nb.name, {}), **nb_params}
            try:
                result = run_notebook(nb, run, nb_params, progress=progress)
            except IbcbenchError as exc:  # its dataset refused (changed, or in use): not run
                result = NotebookResult(nb.name, run.path / nb.name, 0.0, error=str(exc))
                if progress is not None:
                    progress.refused(nb.name, str(exc))
            results.append(result)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the manifest says how far it got
        if not results or results[-1].notebook != nb.name:
            results.append(NotebookResult(nb.name, run.path / nb.name, 0.0, error=stop_reason(exc)))
        _record_notebooks(run, results, time.perf_counter() - started)
        run.update_manifest(status="interrupted", error=stop_reason(exc))
        raise
    elapsed = time.perf_counter() - started
    _record_notebooks(run, results, elapsed)
    run.update_manifest(status="complete" if all(r.ok for r in results) else "failed")
    report = build_report(run, metrics=metrics)
    return RunAllResult(run=run, notebooks=results, report=report, elapsed_s=elapsed)


def notebook_entry(result: NotebookResult) -> dict[str, Any]:
    """What the manifest's ``notebooks`` list says of one notebook: its time, status, dataset,
    time budget (its time-related parameters) and the widest interval it reported."""
    return {
        "notebook": result.notebook,
        "elapsed_s": round(result.elapsed_s, 2),
        "ok": result.ok,
        "error": result.error,
        "dataset": result.dataset,
        "budget": result.budget,
        "widest_interval": result.widest_interval,
    }


def _record_notebooks(run: Run, results: Sequence[NotebookResult], elapsed_s: float) -> None:
    run.update_manifest(
        notebooks=[notebook_entry(r) for r in results],
        dataset=next((r.dataset for r in results if r.dataset is not None), None),
        run_all_elapsed_s=round(elapsed_s, 1),
    )
