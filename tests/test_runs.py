"""Run folders and manifests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ibcbench.errors import RunError
from ibcbench.migrate import load_migrations
from ibcbench.results.runs import Run, build_manifest, find_run, new_run


def test_new_run_creates_folder_with_manifest(tmp_path: Path) -> None:
    run = new_run("idx", root=tmp_path)
    assert run.path.parent == tmp_path and run.id.endswith("-idx")
    manifest = run.manifest()
    assert manifest["run_id"] == run.id and manifest["label"] == "idx"
    second = new_run("idx", root=tmp_path)
    assert second.id != run.id


@pytest.mark.parametrize("label", ["", "a/b", "../up", "sp ace", "x" * 200])
def test_bad_labels_are_refused(tmp_path: Path, label: str) -> None:
    with pytest.raises(RunError, match="run label .* is invalid"):
        new_run(label, root=tmp_path)


def test_find_run_by_path_id_prefix_and_latest(tmp_path: Path) -> None:
    a = new_run("alpha", root=tmp_path)
    b = Run(tmp_path / "29990101-000000-beta")
    b.path.mkdir()
    assert find_run(a.path).path == a.path
    assert find_run(a.id, root=tmp_path).path == a.path
    assert find_run("2999", root=tmp_path).path == b.path
    assert find_run("latest", root=tmp_path).path == b.path


@pytest.mark.parametrize(
    ("ref", "message"),
    [("nope", "no run 'nope'"), ("", "is ambiguous")],
)
def test_find_run_errors(tmp_path: Path, ref: str, message: str) -> None:
    new_run("one", root=tmp_path)
    new_run("two", root=tmp_path)
    with pytest.raises(RunError, match=message):
        find_run(ref or "2", root=tmp_path)


def test_frames_round_trip_as_parquet_and_csv(tmp_path: Path) -> None:
    run = new_run("frames", root=tmp_path)
    frame = pd.DataFrame({"query": ["a", "b"], "p50_ms": [1.5, 2.25]})
    path = run.write_frame("latency", frame)
    assert path.exists() and (path.with_suffix(".csv")).exists()
    pd.testing.assert_frame_equal(run.read_frame("latency"), frame)
    assert run.frames() == ["latency"]
    with pytest.raises(RunError, match="has no result 'missing'"):
        run.read_frame("missing")


@pytest.mark.db
def test_manifest_records_server_and_inputs(schema_dsn: str) -> None:
    manifest = build_manifest(schema_dsn, seed=7, scale="tiny", parameters={"clients": 4})
    assert manifest["seed"] == 7 and manifest["scale"] == "tiny"
    assert manifest["parameters"] == {"clients": 4}
    assert manifest["schema_version"] == load_migrations()[-1].version
    assert manifest["server_version"].startswith("15.")
    assert "timescaledb" in manifest["extensions"]
    assert (
        manifest["settings"]["shared_preload_libraries"] == "timescaledb,pg_stat_statements,pg_cron"
    )
    assert manifest["ibcbench_version"]
