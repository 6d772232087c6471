"""Run folders and manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ibcbench.errors import RunError
from ibcbench.infra.migrate import load_migrations
from ibcbench.results.runs import Run, build_manifest, find_run, new_run, started_run


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
    b.update_manifest(status="complete")
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


@pytest.mark.db
def test_manifest_holds_no_password(server_dsn: str, schema_dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from tests.procscan import password_login

    # a role that logs in with this password (the server checks passwords: a made-up one would
    # not get as far as the manifest)
    with password_login(server_dsn, "manifest_pw", "pw-s3cr3t-77") as login:
        dsn = make_conninfo(login, dbname=conninfo_to_dict(schema_dsn)["dbname"])
        url = "postgresql://someone:pw-s3cr3t-77@db.example:5432/app"
        manifest = build_manifest(dsn, parameters={"dsn": dsn, "other": url, "n": 3})
    text = json.dumps(manifest, default=str)
    assert "pw-s3cr3t-77" not in text
    assert manifest["parameters"]["dsn"].startswith("manifest_pw@")
    assert manifest["parameters"]["other"] == "postgresql://someone:***@db.example:5432/app"


def test_latest_skips_failed_and_unfinished_runs(tmp_path: Path) -> None:
    with started_run("good", root=tmp_path) as good:
        good.write_frame("x", pd.DataFrame({"a": [1]}))
    assert good.manifest()["status"] == "complete"
    with pytest.raises(RuntimeError), started_run("broken", root=tmp_path) as broken:
        broken.write_frame("x", pd.DataFrame({"a": [1]}))
        raise RuntimeError("the command failed half-way")
    assert broken.manifest()["status"] == "failed"
    with pytest.raises(RuntimeError), started_run("stub", root=tmp_path) as stub:
        raise RuntimeError("the command failed before writing anything")
    assert not stub.path.exists()  # no stub left behind
    new_run("running", root=tmp_path)  # a run still going (or killed)
    legacy = Run(tmp_path / "20000101-000000-legacy")  # made before runs had a status
    legacy.path.mkdir()
    (legacy.path / "report.html").write_text("<html></html>")
    assert find_run("latest", root=tmp_path).path == good.path
    new_run("unfinished", root=tmp_path / "only")
    with pytest.raises(RunError, match=r"no complete run in .* \(1 failed or unfinished\)"):
        find_run("latest", root=tmp_path / "only")


def test_a_bad_scale_or_an_unreachable_server_leaves_no_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibcbench.cli import main

    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(SystemExit) as refused:  # the parser refuses it: one line, exit 1
        main(["run-all", "--scale", "bogus"])
    assert refused.value.code == 1
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "scale 'bogus' is unknown: use one of" in out.err
    assert "running" not in out.out  # no notebook ran
    assert main(["run-all", "--dsn", "postgresql://nobody@127.0.0.1:1/none"]) == 1
    assert "cannot connect to nobody@127.0.0.1:1/none" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_a_runs_folder_on_a_full_filesystem_is_one_line_and_leaves_no_stub(
    small_filesystem, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibcbench.cli import main

    fs = small_filesystem(256 * 1024)
    runs = fs.path / "runs"
    runs.mkdir()
    ballast = fs.fill()
    advice = "free space there or set IBCBENCH_RUNS_DIR to another folder"
    with pytest.raises(RunError, match=f"^no space left on {runs}: {advice}$"):
        new_run("full", root=runs)
    assert list(runs.iterdir()) == []
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(runs))
    # before any work: no dataset is built, no workload runs
    assert main(["bench", "workload", "--scale", "tiny", "--duration", "1"]) == 1
    assert capsys.readouterr().err == f"ibcbench: error: no space left on {runs}: {advice}\n"
    assert list(runs.iterdir()) == []
    from ibcbench.results.runs import check_runs_root

    with pytest.raises(RunError, match=f"^no space left on {runs}: {advice}$"):
        check_runs_root(runs)
    # a run that fills the disk half-way: one line, and the folder that cannot say it failed goes
    ballast.unlink()
    with (
        pytest.raises(
            RunError,
            match=r"^no space left on .* writing run \S+-filling \(its folder was removed\)",
        ),
        started_run("filling", root=runs) as run,
    ):
        run.write_frame("big", pd.DataFrame({"x": ["y" * 1000] * 1000}))
        with open(run.path / "more.bin", "wb") as fh:
            while True:
                fh.write(b"\0" * 65536)
    assert list(runs.iterdir()) == []
