"""Run folders and their manifests.

A run is a folder ``runs/<id>/`` holding everything one benchmark run produced: executed notebooks,
result tables (Parquet, with a CSV twin for eyes and spreadsheets), figures, captured plans, and
``manifest.json``: seed, scale, schema version, server version and non-default settings, extension
versions, package version and parameters, so two runs can be compared and reproduced.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ibcbench import __version__
from ibcbench.errors import DISK_FULL_ERRNOS, RunError, write_advice, write_failure
from ibcbench.inputs import NAME_RE, check_name, safe_child

_ID_RE = NAME_RE  # a run label: letters, digits, '.', '_', '-'
#: what a manifest written by :func:`new_run` always holds
RUN_KEYS = ("run_id", "created_at")


def runs_root() -> Path:
    """Where run folders go: ``IBCBENCH_RUNS_DIR``, else ``./runs``."""
    return Path(os.environ.get("IBCBENCH_RUNS_DIR") or "runs").resolve()


@dataclass(frozen=True)
class Run:
    """One run folder."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        """The run's manifest ({} while it has none); one that cannot be read is a :class:`RunError`."""
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise RunError(
                f"the manifest {self.manifest_path} cannot be read ({reason}): restore it, or run "
                "the notebooks again into a new run folder"
            ) from exc
        if not isinstance(manifest, dict):
            raise RunError(
                f"the manifest {self.manifest_path} is not a JSON object: restore it, or run the "
                "notebooks again into a new run folder"
            )
        return manifest

    def require_manifest(self) -> dict[str, Any]:
        """The manifest of a run folder the kit made (:data:`RUN_KEYS` in it), else a
        :class:`RunError`: a folder without one is not a run, and nothing is written into it."""
        manifest = self.manifest()
        missing = [k for k in RUN_KEYS if k not in manifest]
        if not self.manifest_path.is_file() or missing:
            raise RunError(
                f"{self.path} is not a run folder (no manifest.json with "
                f"{', '.join(RUN_KEYS)}): give a run id or folder made by `ibcbench run` / `run-all`"
            )
        return manifest

    def update_manifest(self, **entries: Any) -> dict[str, Any]:
        manifest = self.manifest()
        manifest.update(entries)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, self.manifest_path)
        return manifest

    def replace_file(self, name: str, text: str) -> Path:
        """Write ``<run>/<name>`` whole or not at all: into a new file of the folder (created
        exclusively, never through a link), then renamed over ``name``. A ``name`` that is a
        symlink is refused: the file it points to is never written."""
        if os.path.islink(self.path / check_name(name, "file name")):
            raise RunError(
                f"{self.path / name} is a symlink: remove it and run again (the kit writes into "
                "the run folder only, never through a link)"
            )
        path = safe_child(self.path, name)
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise RunError(
                f"{write_failure(exc, self.path)} writing {name}: {runs_advice(exc)}"
            ) from exc
        return path

    def subdir(self, *parts: str) -> Path:
        path = safe_child(self.path, *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_frame(self, name: str, frame: pd.DataFrame, *, folder: str = "results") -> Path:
        """Write ``frame`` as ``<folder>/<name>.parquet`` and ``.csv``; returns the Parquet path."""
        check_name(name, "result name")
        out = self.subdir(folder)
        parquet = safe_child(out, f"{name}.parquet")
        frame.to_parquet(parquet, index=False)
        frame.to_csv(safe_child(out, f"{name}.csv"), index=False)
        return parquet

    def read_frame(self, name: str, *, folder: str = "results") -> pd.DataFrame:
        path = safe_child(self.path, folder, f"{check_name(name, 'result name')}.parquet")
        if not path.exists():
            raise RunError(f"run {self.id!r} has no result {name!r} ({path} is missing)")
        return pd.read_parquet(path)

    def frames(self, *, folder: str = "results") -> list[str]:
        return sorted(p.stem for p in (self.path / folder).glob("*.parquet"))


def new_run(label: str = "run", root: Path | None = None) -> Run:
    """Create ``runs/<UTC timestamp>-<label>/`` (a suffix keeps ids unique within a second)."""
    if not _ID_RE.fullmatch(label):
        raise RunError(f"run label {label!r} is invalid: use letters, digits, '.', '_' or '-'")
    base = root or runs_root()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        name = f"{stamp}-{label}" + (f"-{n}" if n else "")
        path = base / name
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunError(f"{write_failure(exc, base)}: {runs_advice(exc)}") from exc
        run = Run(path)
        try:
            run.update_manifest(
                run_id=name, created_at=datetime.now(UTC).isoformat(), label=label, status="running"
            )
        except OSError as exc:  # a full disk: no stub folder stays
            shutil.rmtree(path, ignore_errors=True)
            raise RunError(f"{write_failure(exc, base)}: {runs_advice(exc)}") from exc
        return run
    raise RunError(f"cannot create a run folder under {base}: too many runs in one second")


@contextmanager
def started_run(label: str = "run", root: Path | None = None) -> Iterator[Run]:
    """A new run folder for a command: its manifest's ``status`` says ``complete`` when the command
    returns (unless it set ``failed``); a command that raises leaves no stub behind (the folder is
    removed while it holds nothing but its manifest) or a folder marked ``failed`` (unless it set a
    status of its own, ``interrupted``)."""
    run = new_run(label, root)
    try:
        yield run
        if run.manifest().get("status") == "running":
            run.update_manifest(status="complete")
    except BaseException as exc:
        if [p.name for p in run.path.iterdir()] == ["manifest.json"]:
            shutil.rmtree(run.path, ignore_errors=True)
        else:
            try:
                if run.manifest().get("status") == "running":
                    run.update_manifest(status="failed")
            except (
                OSError
            ):  # a full disk: a folder that cannot say it failed goes (the kit wrote it all)
                shutil.rmtree(run.path, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            kept = "marked failed" if run.path.exists() else "removed"
            raise RunError(
                f"{write_failure(exc, exc.filename or run.path.parent)} writing run {run.id} (its "
                f"folder was {kept}): {runs_advice(exc)}"
            ) from exc
        raise


def runs_advice(exc: OSError) -> str:
    """What to do when the runs folder cannot be written, by the error's errno: free space on a full
    disk, make a read-only or forbidden folder writable, raise a file size limit."""
    return f"{write_advice(exc)} there or set IBCBENCH_RUNS_DIR to another folder"


def check_runs_root(root: Path | None = None) -> Path:
    """Before a command's work: the runs folder can take a file (a full or read-only disk is one
    :class:`RunError` line now, not after the work). Returns the folder."""
    base = root or runs_root()
    try:
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=base, prefix=".ibcbench-probe-") as probe:
            probe.write("{}\n")
            probe.flush()
    except OSError as exc:
        raise RunError(f"{write_failure(exc, base)}: {runs_advice(exc)}") from exc
    return base


def _complete(path: Path) -> bool:
    """A run folder 'latest' may pick: marked complete, or (made before runs had a status) holding
    more than its manifest."""
    try:
        status = Run(path).manifest().get("status")
    except RunError:  # an unreadable manifest: not a run 'latest' may pick
        return False
    if status is not None:
        return status == "complete"
    return any(p.name != "manifest.json" for p in path.iterdir())


def _notebook_run(path: Path) -> bool:
    """A run of the notebooks (``run`` / ``run-all``): its manifest lists notebooks, and it is not
    a fault-suite run."""
    try:
        manifest = Run(path).manifest()
    except RunError:
        return False
    return bool(manifest.get("notebooks")) and manifest.get("faults") is None


def find_run(ref: str | Path, root: Path | None = None, *, notebooks: bool = False) -> Run:
    """A run by folder path or id (a unique prefix of an id works too); 'latest' is the newest
    complete run (failed, interrupted and running ones are skipped), with ``notebooks=True`` the
    newest complete run of the notebooks (fault-suite and workload runs are skipped too)."""
    candidate = Path(ref)
    if candidate.is_dir():
        return Run(candidate.resolve())
    base = root or runs_root()
    if not base.is_dir():
        raise RunError(
            f"no runs folder at {base}: run `ibcbench run-all` first or pass a run folder"
        )
    runs = sorted(p for p in base.iterdir() if p.is_dir())
    if str(ref) == "latest":
        if not runs:
            raise RunError(f"no runs in {base}: run `ibcbench run-all` first")
        complete = [p for p in runs if _complete(p) and (not notebooks or _notebook_run(p))]
        if not complete and notebooks:
            raise RunError(
                f"no complete notebook run in {base}: run `ibcbench run-all` first, or name a run"
            )
        if not complete:
            raise RunError(
                f"no complete run in {base} ({len(runs)} failed or unfinished): run "
                "`ibcbench run-all` first, or name a run"
            )
        return Run(complete[-1])
    matches = [p for p in runs if p.name == str(ref)] or [
        p for p in runs if p.name.startswith(str(ref))
    ]
    if len(matches) == 1:
        return Run(matches[0])
    if not matches:
        raise RunError(f"no run {str(ref)!r} in {base}: list them with `ls {base}`")
    raise RunError(f"run id {str(ref)!r} is ambiguous in {base}: give more of it")


def _git_commit() -> str | None:
    """The commit of the checkout the package runs from; None for an installed package (whose
    site-packages may sit inside some other repository)."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / ".git").exists() or not (checkout / "pyproject.toml").is_file():
        return None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=checkout,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def server_manifest(conn: Any) -> dict[str, Any]:
    """What the manifest records about the server: version, extensions, edition, non-default settings."""
    from ibcbench.db import server_info
    from ibcbench.infra.migrate import read_version

    info = server_info(conn)
    settings = {
        name: (f"{value}{unit or ''}" if unit and unit not in ("B",) else value)
        for name, value, unit in conn.execute(
            "SELECT name, setting, unit FROM pg_settings"
            " WHERE source NOT IN ('default', 'override', 'client', 'session')"
            " AND name NOT IN ('port', 'unix_socket_directories', 'data_directory', 'hba_file',"
            " 'ident_file', 'config_file', 'listen_addresses', 'application_name')"
            " ORDER BY name"
        ).fetchall()
    }
    version, dirty = read_version(conn)
    cores = os.cpu_count()
    mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    if conn.info.transaction_status != 0:
        conn.rollback()
    return {
        "server_version": info.version,
        "server_version_num": info.version_num,
        "database": info.database,
        "timescaledb": info.edition_label,
        "timescaledb_edition": info.timescaledb_edition,
        # the build's record: {"version", "patched": ["NAME (#N)", ...]}; None where none is readable
        "timescaledb_build": (
            info.timescaledb_build.manifest() if info.timescaledb_build is not None else None
        ),
        "extensions": info.extensions,
        "settings": settings,
        "schema_version": version,
        "schema_dirty": dirty,
        "machine": {"cores": cores, "memory_gib": mem_gib, "platform": platform.platform()},
    }


def build_manifest(
    dsn: str | None = None,
    *,
    seed: int | None = None,
    scale: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    dataset: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete manifest for a result: the run's inputs plus what the server and kit were, and
    ``dataset``: the state the run found its dataset in (``DatasetState.manifest()``)."""
    from ibcbench.db import connect, resolve_dsn
    from ibcbench.dsn import describe_dsn, redact_dsn

    target = resolve_dsn(dsn)
    # no password reaches a manifest: a DSN parameter is described, any other string redacted
    inputs = {
        k: (describe_dsn(v) if k == "dsn" else redact_dsn(v)) if isinstance(v, str) else v
        for k, v in dict(parameters or {}).items()
    }
    with connect(target) as conn:
        server = server_manifest(conn)
    return {
        "ibcbench_version": __version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "seed": seed,
        "scale": scale,
        "parameters": inputs,
        "target": describe_dsn(target),
        "recorded_at": datetime.now(UTC).isoformat(),
        **server,
        **({"dataset": dict(dataset)} if dataset is not None else {}),
    }
