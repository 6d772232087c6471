"""Notebooks: run them with papermill into a run folder (one, or the whole suite and its report).

What a notebook records is read back with :func:`ibcbench.results.recorded.read_recorded`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ibcbench.errors import RunError
from ibcbench.results.recorded import read_recorded
from ibcbench.results.runs import Run
from ibcbench.suite.report import build_report

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


def notebooks_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "notebooks"


def numbered_notebooks(folder: Path | None = None) -> list[Path]:
    """The benchmark notebooks in reading order: ``NN_name.ipynb``."""
    base = folder or notebooks_dir()
    return sorted(p for p in base.glob("[0-9][0-9]_*.ipynb"))


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


def parse_parameter(raw: str) -> Any:
    """A ``-p key value`` value: JSON when it parses (numbers, true/false, null, lists), else the string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


@dataclass(frozen=True)
class NotebookResult:
    notebook: str
    output: Path
    elapsed_s: float
    recorded: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_notebook(
    notebook: Path | str,
    run: Run,
    parameters: Mapping[str, Any] | None = None,
    *,
    progress: bool = False,
) -> NotebookResult:
    """Execute ``notebook`` with papermill into the run folder; failures are returned, not raised.

    Like papermill, a failed notebook is still written (with the error in place) and its path returned.
    """
    import papermill as pm

    source = Path(notebook)
    if not source.exists():
        candidate = notebooks_dir() / source.name
        if candidate.exists():
            source = candidate
        else:
            raise RunError(f"notebook {notebook} does not exist: see `ls notebooks/`")
    kernel = ensure_kernel()
    output = run.path / source.name
    params = {"run_dir": str(run.path), **dict(parameters or {})}
    # a DSN (and its password) never goes into the executed notebook as a parameter: the kernel
    # reads it from DATABASE_URL, which it inherits from this process while it starts
    secret = params.get("dsn")
    if isinstance(secret, str) and secret:
        params["dsn"] = None
    else:
        secret = None
    started = time.perf_counter()
    error: str | None = None
    saved = os.environ.get("DATABASE_URL")
    if secret:
        os.environ["DATABASE_URL"] = secret
    try:
        pm.execute_notebook(
            str(source),
            str(output),
            parameters=params,
            kernel_name=kernel,
            cwd=str(run.path),
            progress_bar=progress,
            log_output=False,
            request_save_on_cell_execute=True,
            kernel_manager_class=_local_kernel_manager(),
        )
    except pm.PapermillExecutionError as exc:
        error = f"{exc.ename}: {str(exc.evalue).splitlines()[0] if exc.evalue else ''}".strip()
    finally:
        if secret:
            if saved is None:
                os.environ.pop("DATABASE_URL", None)
            else:
                os.environ["DATABASE_URL"] = saved
    elapsed = time.perf_counter() - started
    recorded = read_recorded(output) if output.exists() else {}
    return NotebookResult(source.name, output, elapsed, recorded, error)


def _local_kernel_manager() -> type:
    """papermill's kernel manager on unix sockets: the kernel never listens on TCP (and ipykernel
    has no reason to warn that it does so unencrypted)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum

    class LocalKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    return LocalKernelManager


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
) -> RunAllResult:
    """Run the numbered notebooks in order into ``run``, then build its report.

    A failing notebook does not stop the others; the result says which failed.
    """
    from ibcbench.data.datasets import validate_dataset
    from ibcbench.results.runs import build_manifest

    validate_dataset(scale, seed)
    chosen = list(notebooks) if notebooks is not None else numbered_notebooks()
    if not chosen:
        raise RunError(f"no numbered notebooks in {notebooks_dir()}")
    params: dict[str, Any] = {"scale": scale, "seed": seed, "dsn": dsn, **dict(extra or {})}
    run.update_manifest(**build_manifest(dsn, seed=seed, scale=scale, parameters=params))
    started = time.perf_counter()
    results: list[NotebookResult] = []
    for nb in chosen:
        if echo:
            print(f"running {nb.name} ...", flush=True)
        nb_params = dict(params)
        if scale != "tiny":
            nb_params = {**FULL_SCALE_PARAMETERS.get(nb.name, {}), **nb_params}
        result = run_notebook(nb, run, nb_params)
        results.append(result)
        if echo:
            status = "ok" if result.ok else f"FAILED ({result.error})"
            print(f"  {nb.name}: {status} in {result.elapsed_s:.1f} s", flush=True)
    elapsed = time.perf_counter() - started
    run.update_manifest(
        notebooks=[
            {
                "notebook": r.notebook,
                "elapsed_s": round(r.elapsed_s, 2),
                "ok": r.ok,
                "error": r.error,
            }
            for r in results
        ],
        run_all_elapsed_s=round(elapsed, 1),
        status="complete" if all(r.ok for r in results) else "failed",
    )
    report = build_report(run)
    return RunAllResult(run=run, notebooks=results, report=report, elapsed_s=elapsed)
