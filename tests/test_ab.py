"""``ibcbench ab`` on the real server at tiny scale: a dropped index is a regression named with its
plan change, an A/A run passes, bad input is one line before any work, and the CI workflow's
``ibcbench ab`` step works on two local migrations folders."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import psycopg
import pytest
import yaml

from ibcbench.cli import main

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "schema" / "migrations"
WORKFLOW = ROOT / "docs" / "ci-workflow.yml"
#: the index ``packet_by_channel_sequence`` reads (schema/migrations/000004_create_indexes.up.sql)
INDEX = "idx_packet_flow_channel_sequence"
QUERY = "packet_by_channel_sequence"
PLAN_CHANGE = f"plan: Index Scan using {INDEX} on packet_flow -> Seq Scan on packet_flow"
#: few, short rounds: the machine is shared
QUICK = ["--rounds", "8", "--min-rounds", "4", "--repetitions", "3", "--budget-s", "15"]


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def ab_databases(server_dsn: str) -> list[str]:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'ibcbench\\_ab\\_%'"
        ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runs"
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(folder))
    return folder


def test_a_dropped_index_is_a_regression_named_with_its_plan_change(
    server_dsn: str, runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drop = tmp_path / "drop.sql"
    drop.write_text(f"DROP INDEX {INDEX};\n")
    argv = ["ab", "--scale", "tiny", "--head-sql", str(drop), "--fail-on", "regression", *QUICK]
    assert run_cli([*argv, "--dsn", server_dsn]) == 1
    out, err = capsys.readouterr()
    regressions = [line for line in err.splitlines() if line.startswith("regression: ")]
    assert any(line.startswith(f"regression: {QUERY} {PLAN_CHANGE}") for line in regressions), err
    assert "buffers x" in regressions[0]
    assert out.splitlines()[-1].startswith("ab: 11 queries, ")
    assert ab_databases(server_dsn) == []
    (run,) = list(runs.iterdir())
    saved = json.loads((run / "ab.json").read_text())
    assert saved["seed"] == 42
    assert {o["query"] for o in saved["order"]} >= {QUERY}
    assert {o["first"] for o in saved["order"]} == {"base", "head"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["key_numbers"]["ab_regressions"] >= 1
    assert (run / "results" / "ab_queries.parquet").exists()


def test_an_aa_run_passes(server_dsn: str, runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ab", "--scale", "tiny", "--fail-on", "regression", *QUICK, "--rounds", "12"]
    code = run_cli([*argv, "--dsn", server_dsn])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "plan change" in out.splitlines()[0]
    last = out.splitlines()[-1]
    assert last.startswith("ab: 11 queries, 0 regressions, "), last
    assert ab_databases(server_dsn) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--base-sql", "{tmp}/missing.sql"], "--base-sql {tmp}/missing.sql is not a file"),
        (["--head-migrations", "{tmp}/empty"], "--head-migrations {tmp}/empty holds no migrations"),
        (["--rounds", "0"], "argument --rounds: 0 must be at least 1"),
        (["--queries", "nope"], "workload 'ibc-seed' has no query 'nope'"),
    ],
)
def test_bad_input_is_one_line_before_any_work(
    extra: list[str],
    message: str,
    server_dsn: str,
    runs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "empty").mkdir()
    argv = ["ab", "--scale", "tiny", *[e.format(tmp=tmp_path) for e in extra]]
    assert run_cli([*argv, "--dsn", server_dsn]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message.format(tmp=tmp_path) in err
    assert not runs.exists() or list(runs.iterdir()) == []
    assert ab_databases(server_dsn) == []


def _workflow_ab_step() -> list[str]:
    """The ``ibcbench ab`` command of docs/ci-workflow.yml, as arguments after ``ibcbench``."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = workflow["jobs"].values()
    (command,) = [s["run"] for s in job["steps"] if " ab " in f" {s.get('run', '')} "]
    words = shlex.split(command)
    return words[words.index("ab") :]


def test_the_ci_workflow_steps_run_locally_at_tiny_scale(
    server_dsn: str, runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """main's migrations as base; the same plus a migration dropping an index as the PR's head."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = [s.get("run", "") for s in next(iter(workflow["jobs"].values()))["steps"]]
    assert any("scripts/setup" in s for s in steps)
    assert any("ibcbench run-all --scale tiny" in s for s in steps)
    uploads = [s for s in next(iter(workflow["jobs"].values()))["steps"] if "uses" in s]
    assert any(s["uses"].startswith("actions/upload-artifact") for s in uploads)

    main_dir = tmp_path / "main" / "schema" / "migrations"
    pr_dir = tmp_path / "pr" / "schema" / "migrations"
    shutil.copytree(MIGRATIONS, main_dir)
    shutil.copytree(MIGRATIONS, pr_dir)
    last = max(int(p.name[:6]) for p in MIGRATIONS.glob("*.up.sql"))
    name = f"{last + 1:06d}_drop_index_packet_flow_channel_sequence"
    (pr_dir / f"{name}.up.sql").write_text(f"DROP INDEX IF EXISTS {INDEX};\n")
    (pr_dir / f"{name}.down.sql").write_text(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON packet_flow (source_chain, source_channel, sequence);\n"
    )
    argv = [
        str(tmp_path / a) if a.endswith("schema/migrations") else ("tiny" if a == "small" else a)
        for a in _workflow_ab_step()
    ]
    assert argv[:1] == ["ab"] and "--fail-on" in argv
    assert run_cli([*argv, *QUICK, "--dsn", server_dsn]) == 1
    err = capsys.readouterr().err
    assert f"regression: {QUERY} {PLAN_CHANGE}" in err
    (run,) = list(runs.iterdir())
    applied = json.loads((run / "ab.json").read_text())["sides"]
    assert applied["base"]["applied"] == []
    assert applied["head"]["applied"] == [f"migration {name}"]
    assert ab_databases(server_dsn) == []


def test_a_session_on_the_dataset_is_one_line_and_leaves_nothing(
    server_dsn: str, runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A template copy needs the dataset database to itself: one line naming it, nothing left."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from ibcbench.bench.ab import sides

    # the dataset exists (with the usual wait: sessions of earlier tests may still be closing)
    assert run_cli(["ab", "--scale", "tiny", *QUICK, "--dsn", server_dsn]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sides, "TEMPLATE_WAIT_S", 0.5)  # the held session below never goes
    dataset = make_conninfo(**{**conninfo_to_dict(server_dsn), "dbname": "ibcbench_tiny_s42"})
    with psycopg.connect(dataset, autocommit=True):
        code = run_cli(["ab", "--scale", "tiny", *QUICK, "--dsn", server_dsn])
    err = capsys.readouterr().err
    assert code == 1
    assert re.search(r"cannot copy the dataset database 'ibcbench_tiny_s42': \d other session", err)
    assert len(err.strip().splitlines()) == 1
    assert ab_databases(server_dsn) == []
    assert len(list(runs.iterdir())) == 1  # the first run's; the refused one left no folder


def test_the_timing_sessions_run_nothing_but_the_rounds(
    server_dsn: str, runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Parameters are sampled in a session of its own, closed before the rounds: a timing session
    that had sampled (a scan of every table) was faster at hourly_packet_stats than the other side's,
    a bias an A/A run flagged as a regression."""
    from ibcbench.bench.ab import benchmark

    seen: dict[str, object] = {}
    sample, rounds = benchmark.sample_parameters, benchmark.run_rounds

    def sampling(conn: psycopg.Connection, *args: object, **kwargs: object) -> object:
        seen["sampler"] = conn.info.backend_pid
        return sample(conn, *args, **kwargs)  # type: ignore[arg-type]

    def timing(conns: dict[str, psycopg.Connection], *args: object, **kwargs: object) -> object:
        seen["timing"] = {conn.info.backend_pid for conn in conns.values()}
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            seen["sampler_alive"] = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (seen["sampler"],)
            ).fetchone() == (1,)
        return rounds(conns, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(benchmark, "sample_parameters", sampling)
    monkeypatch.setattr(benchmark, "run_rounds", timing)
    assert run_cli(["ab", "--scale", "tiny", *QUICK, "--dsn", server_dsn]) == 0
    capsys.readouterr()
    assert seen["sampler"] not in seen["timing"]  # type: ignore[operator]
    assert seen["sampler_alive"] is False
    assert ab_databases(server_dsn) == []
