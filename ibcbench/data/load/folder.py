"""Generated folders (TSBS-style phases): writing one, checking it against its manifest, loading it."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from data_gen import GenerationParams
from data_gen.tables import FACT_TABLES, TABLES
from ibcbench.data.load.attempt import Attempt, first_line
from ibcbench.data.load.checks import check_incident_table, check_schema, check_span, lock
from ibcbench.data.load.copy import check_streamed, copy_stream, file_sha256, file_stream
from ibcbench.data.load.derived import upsert_derived
from ibcbench.data.load.producer import encoded_batches
from ibcbench.data.load.progress import progress
from ibcbench.data.load.record import record_span
from ibcbench.data.load.results import GenerateResult, LoadResult, TableLoad
from ibcbench.data.pgcopy import HEADER, TRAILER
from ibcbench.data.space import output_folder
from ibcbench.errors import LoadError


def generate_dataset(
    params: GenerationParams, out_dir: Path | str, *, quiet: bool = False
) -> GenerateResult:
    """Write one binary COPY file per table and ``manifest.json``; the same params give the same bytes.

    ``params.resume`` (see :func:`resume_state`) makes the folder a continuation of a database.
    """
    out = Path(out_dir)
    started = time.perf_counter()
    manifest: dict[str, Any] = {}
    # a full disk or an interrupt removes what was written (one LoadError line for an OSError)
    with output_folder(out) as folder:
        handles = {t: folder.open(f"{t}.pgcopy") for t in TABLES}
        for h in handles.values():
            h.write(HEADER)
        with progress(None, quiet, "generate") as bar:
            for item in encoded_batches(params):
                if isinstance(item, dict):
                    manifest = item
                    continue
                handles[item.table].write(item.body)
                if item.table in FACT_TABLES:
                    bar.update(item.rows)
        for h in handles.values():
            h.write(TRAILER)
        folder.close()
        files: dict[str, dict[str, Any]] = {}
        for t in TABLES:
            path = out / f"{t}.pgcopy"
            files[t] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        manifest["files"] = files
        folder.write_text("manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return GenerateResult(
        out, manifest, time.perf_counter() - started, {t: f["bytes"] for t, f in files.items()}
    )


#: what a folder's manifest must hold for a load, and the type of each
_MANIFEST_KEYS: dict[str, type | tuple[type, ...]] = {
    "seed": int,
    "scale": str,
    "span_start": str,
    "span_end": str,
    "first_packet_id": int,
    "next_packet_id": int,
    "rows": dict,
    "checksums": dict,
    "params": dict,
    "files": dict,
}


def read_manifest(folder: Path | str) -> dict[str, Any]:
    """A generated folder's manifest, after checking it is whole and every table file is the one it
    names: there, of its size and SHA-256, a binary COPY stream. Every problem is one LoadError,
    raised before any database work."""
    folder = Path(folder)
    again = "generate it again with `ibcbench generate --out NEW_FOLDER`"
    if not folder.is_dir():
        raise LoadError(
            f"{folder} is not a folder: generate one with `ibcbench generate --out {folder}`"
        )
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise LoadError(
            f"{folder} holds no manifest.json: generate it with `ibcbench generate --out {folder}`"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(f"{path} is not a JSON manifest ({first_line(exc)}): {again}") from exc
    if not isinstance(manifest, dict):
        raise LoadError(f"{path} is not a manifest (a JSON object): {again}")
    for key, kind in _MANIFEST_KEYS.items():
        if key not in manifest:
            raise LoadError(f"{path} has no {key!r}: the folder is damaged; {again}")
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            raise LoadError(
                f"{path} has a {key!r} of the wrong type: the folder is damaged; {again}"
            )
    for key in ("span_start", "span_end"):
        try:
            datetime.fromisoformat(manifest[key])
        except ValueError as exc:
            raise LoadError(f"{path} has a {key!r} that is not a time: {again}") from exc
    for t in TABLES:
        rows = manifest["rows"].get(t)
        entry = manifest["files"].get(t)
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise LoadError(f"{path} has no row count for {t}: the folder is damaged; {again}")
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("sha256"), str)
        ):
            raise LoadError(
                f"{path} has no size and SHA-256 for {t}: the folder is damaged; {again}"
            )
    incidents = manifest.get("incidents") or []
    if not isinstance(incidents, list) or not all(
        isinstance(i, dict) and {"kind", "chain_id", "start", "end"} <= i.keys() for i in incidents
    ):
        raise LoadError(f"{path} has a damaged list of incidents: {again}")
    for t in TABLES:
        _check_file(folder / f"{t}.pgcopy", manifest["files"][t], again)
    return manifest


def _check_file(path: Path, entry: dict[str, Any], again: str) -> None:
    """One table file against its manifest entry: there, its size, a COPY stream, its SHA-256."""
    if not path.is_file():
        raise LoadError(f"{path} is missing: generate the folder again")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise LoadError(
            f"{path} has {size} bytes but the manifest says {entry['bytes']}: "
            "the folder is damaged; generate it again"
        )
    with open(path, "rb") as fh:
        head = fh.read(len(HEADER))
        fh.seek(max(size - len(TRAILER), 0))
        tail = fh.read()
    if head != HEADER or tail != TRAILER:
        raise LoadError(f"{path} is not a binary COPY file (no PGCOPY header and trailer): {again}")
    if file_sha256(path) != entry["sha256"]:
        raise LoadError(
            f"{path} is not the file its manifest names (its SHA-256 differs): the folder is "
            f"damaged or was edited; {again}"
        )


def load_folder(dsn: str | None, folder: Path, *, quiet: bool) -> LoadResult:
    manifest = read_manifest(folder)
    span_start = datetime.fromisoformat(manifest["span_start"])
    span_end = datetime.fromisoformat(manifest["span_end"])
    tables = []
    attempt = Attempt(
        dsn, f"folder {folder.resolve()}", again=f"run `ibcbench load {folder}` again"
    )
    with attempt.connection() as conn, conn.cursor() as cur:
        check_schema(conn)
        check_incident_table(conn, bool(manifest.get("incidents")))
        attempt.start_journal(conn, manifest["checksums"])
        lock(conn)
        if conn.execute(
            "SELECT 1 FROM ibcbench_loads WHERE checksums = %s::jsonb",
            (json.dumps(manifest["checksums"], sort_keys=True),),
        ).fetchone():
            conn.rollback()
            attempt.end("skipped")
            return LoadResult(
                [],
                0.0,
                manifest,
                span_start,
                span_end,
                skipped=True,
                settled=attempt.settled,
                attempt_id=attempt.attempt_id,
            )
        check_span(conn, span_start, int(manifest["first_packet_id"]))
        started = time.perf_counter()
        with progress(sum(manifest["rows"][t] for t in FACT_TABLES), quiet, "load") as bar:
            for t in TABLES:
                t0 = time.perf_counter()
                path = folder / f"{t}.pgcopy"
                # the hash is over the bytes sent, not the file as read_manifest saw it
                digest = hashlib.sha256()
                if t in FACT_TABLES:
                    written = copy_stream(cur, t, file_stream(path, digest))
                    copied = cur.rowcount
                    bar.update(manifest["rows"][t])
                else:
                    written, copied = upsert_derived(cur, t, file_stream(path, digest))
                check_streamed(path, manifest["files"][t], digest, written)
                if copied != manifest["rows"][t]:  # the transaction rolls back
                    raise LoadError(
                        f"the manifest says {manifest['rows'][t]:,} rows for {t} but the file holds "
                        f"{copied:,}: the folder is damaged; generate it again"
                    )
                tables.append(TableLoad(t, copied, written, time.perf_counter() - t0))
        record_span(cur, manifest, time.perf_counter() - started, attempt.attempt_id)
        attempt.commit(conn)
        elapsed = time.perf_counter() - started  # the load's clock includes COMMIT
    attempt.end("committed")
    return LoadResult(
        tables,
        elapsed,
        manifest,
        span_start,
        span_end,
        settled=attempt.settled,
        attempt_id=attempt.attempt_id,
    )
