"""Checks on what callers pass (ibcbench.inputs), the notebook parameter checks built on them, and
the one-line refusals of the CLI before any work (no run folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from data_gen import GenerationParams
from ibcbench.errors import ConfigError, PlanError, RunError
from ibcbench.inputs import (
    check_chunk_interval,
    check_name,
    check_room,
    interval_name,
    safe_child,
)
from ibcbench.suite.parameters import validate_parameters

PAYLOAD = (
    "x\t(a\tint);\tCREATE\tTABLE\tpublic.injected_by_param\t(x\tint);\tCREATE\tTABLE\t"
    "ibcbench_layouts.z"
)


@pytest.mark.parametrize("name", ["a", "no_indexes", "random_page_cost_1.1", "run-2", "X9"])
def test_a_plain_name_passes(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["nl\n", "", "../x", "/abs", "a/b", ".hidden", "a b", "a\tb", "x" * 122, 7, None]
)
def test_a_name_that_is_not_plain_is_refused(name: object) -> None:
    with pytest.raises(ConfigError, match=r"is invalid: use letters, digits"):
        check_name(name)


@pytest.mark.parametrize(
    ("interval", "name"),
    [
        ("1 hour", "1_hour"),
        ("7 days", "7_days"),
        ("30 minutes", "30_minutes"),
        ("2 weeks", "2_weeks"),
    ],
)
def test_a_chunk_interval_passes_and_names_its_layout(interval: str, name: str) -> None:
    assert interval_name(interval) == name


@pytest.mark.parametrize(
    "interval", [PAYLOAD, "1 hour\n", "1  hour", "0 hours", "1 hour; DROP", "1 year", "1\thour", ""]
)
def test_a_chunk_interval_that_is_not_a_count_and_a_unit_is_refused(interval: str) -> None:
    with pytest.raises(ConfigError, match=r"chunk interval .* is invalid: give a count and a unit"):
        check_chunk_interval(interval)


@pytest.mark.parametrize(
    "parts", [("../outside",), ("a", "../../b"), ("/etc/passwd",), ("",), ("a\x00b",)]
)
def test_a_path_that_leaves_its_folder_is_refused(tmp_path: Path, parts: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match=r"would leave|is invalid"):
        safe_child(tmp_path, *parts)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (inside / "link").symlink_to(outside)
    assert safe_child(inside, "plans", "a.json") == inside.resolve() / "plans" / "a.json"
    with pytest.raises(ConfigError, match=r"leads out of .* \(through a symlink\)"):
        safe_child(inside, "link", "a.json")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"chunk_intervals": [PAYLOAD]},
            r"chunk_intervals .* is invalid \(give a count and a unit",
        ),
        ({"repetitions": 10_000_000_000}, r"repetitions .* must be at most 100000"),
        ({"seed": 99999999999999999999999}, r"seed .* must be at most 4294967295"),
        ({"seed": -1}, r"seed .* must be 0 or more"),
    ],
)
def test_notebook_05_parameters_are_refused(parameters: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_parameters("05_timescale.ipynb", parameters)


@pytest.mark.parametrize(
    ("notebook", "parameters", "message"),
    [
        ("03_pool_settings.ipynb", {"duration_s": float("inf")}, r"must be a finite number"),
        ("03_pool_settings.ipynb", {"duration_s": 1e9}, r"must be at most 3600"),
        ("03_pool_settings.ipynb", {"clients": [1, 10**9]}, r"must be at most 1000"),
        ("02_index_strategies.ipynb", {"strategies": ["none;drop"]}, r"is not an index strategy"),
        (
            "04_query_plans.ipynb",
            {"config_a": {"name": "../../../outside/escaped_a", "index_strategy": "none"}},
            r"config_a .* has name that is invalid",
        ),
        (
            "04_query_plans.ipynb",
            {"config_a": {"name": "/abs", "index_strategy": "none", "settings": {}}},
            r"has name that is invalid",
        ),
        (
            "04_query_plans.ipynb",
            {"second_a": {"name": "a", "index_strategy": "drop;"}},
            r"has index_strategy that is not an index strategy",
        ),
        (
            "04_query_plans.ipynb",
            {"config_b": {"name": "b", "settings": {"x'; DROP": "1"}}},
            r"has a setting name .* that is invalid",
        ),
        (
            "04_query_plans.ipynb",
            {"config_b": {"name": "b", "bogus": 1}},
            r"has no key 'bogus'",
        ),
        ("06_maintenance.ipynb", {"random_page_costs": ["4; DROP"]}, r"is not a number"),
    ],
)
def test_notebook_parameters_are_refused(notebook: str, parameters: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_parameters(notebook, parameters)


def test_a_plan_configuration_may_keep_the_indexes_as_they_are() -> None:
    config = {"name": "rpc_4", "index_strategy": None, "settings": {"random_page_cost": "4"}}
    validate_parameters("04_query_plans.ipynb", {"config_a": config, "second_a": config})


def test_the_defaults_of_every_notebook_pass() -> None:
    from ibcbench.suite.parameters import notebook_parameters, numbered_notebooks

    for nb in numbered_notebooks():
        defaults = {
            k: v
            for k, v in notebook_parameters(nb).items()
            if isinstance(v, int | float | str | list | dict)
        }
        validate_parameters(nb, defaults)


def test_generation_that_cannot_fit_is_refused_with_the_need(tmp_path: Path) -> None:
    params = GenerationParams(packets=2_000_000_000, days=1)
    with pytest.raises(
        ConfigError,
        match=r"no space left on .*new: generating needs about 1520\.0 GB and its disk .* GB free; generate fewer",
    ):
        check_room("generating", disk_bytes=params.disk_bytes(), folder=tmp_path / "new")
    with pytest.raises(ConfigError, match=r"needs about \d+\.\d GB of memory, .* is available"):
        check_room("generating", memory_bytes=params.memory_bytes())
    small = GenerationParams(scale="tiny")
    check_room(
        "tiny", disk_bytes=small.disk_bytes(), folder=tmp_path, memory_bytes=small.memory_bytes()
    )


def test_a_plan_nested_too_deep_is_one_plan_error() -> None:
    from ibcbench.plans import load_plan

    for depth in (151, 500, 5000):
        text = '[{"Plan": ' + '{"Node Type": "Nested Loop", "Plans": [' * (depth - 1)
        text += '{"Node Type": "Result"}' + "]}" * (depth - 1) + "}]"
        with pytest.raises(PlanError, match=r"^plan nested deeper than 150 levels"):
            load_plan(text)
    with pytest.raises(PlanError, match=r"^plan nested deeper than 150 levels"):
        load_plan("[" * 100_000 + "]" * 100_000)


# ---- the CLI: one line, exit 1, no run folder -----------------------------------------------------
def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    runs = tmp_path / "runs"
    environ = {**os.environ, "IBCBENCH_RUNS_DIR": str(runs), **env}
    return subprocess.run(
        [sys.executable, "-m", "ibcbench.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ("run", "05_timescale.ipynb", "-p", "chunk_intervals", json.dumps([PAYLOAD])),
            {},
            "that is invalid (give a count and a unit",
        ),
        (
            (
                "run",
                "04_query_plans.ipynb",
                "-p",
                "config_a",
                '{"name": "../../../outside/escaped_a", "index_strategy": "none", "settings": {}}',
            ),
            {},
            "has name that is invalid",
        ),
        (("run", "02_index_strategies.ipynb", "-p", "repetitions", "10000000000"), {}, "at most"),
        (("run", "03_pool_settings.ipynb", "-p", "duration_s", "Infinity"), {}, "finite"),
        (
            ("run", "02_index_strategies.ipynb", "-p", "seed", "99999999999999999999999"),
            {},
            "at most",
        ),
        (("run", "02_index_strategies.ipynb", "-p", "strategies", '["none;drop"]'), {}, "strategy"),
        (
            ("run", "02_index_strategies.ipynb", "--label", "nl\n"),
            {},
            "run label 'nl\\n' is invalid",
        ),
        (("db", "status"), {"IBCBENCH_CLUSTER": "pn\n"}, "cluster name 'pn\\n' is invalid"),
        (("bench", "load", "--rounds", "1000000000"), {}, "must be at most 1000"),
        (("bench", "workload", "--duration", "1e12"), {}, "must be at most 86400"),
        (("seed", "--seed", "4294967296"), {}, "must be at most 4294967295"),
        (("generate", "--packets", "2000000000", "--days", "1", "--out", "OUT"), {}, "GB free"),
    ],
)
def test_bad_input_is_one_line_before_any_work(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    done = _cli(tmp_path, *args, **env)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("ibcbench: error: ")
    assert message in done.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    assert not (tmp_path / "OUT").exists() and not (tmp_path.parent / "outside").exists()


# ---- report: a run folder only, never through a symlink ---------------------------------------------
def test_report_refuses_a_folder_without_a_run_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    done = _cli(tmp_path, "report", str(folder))
    assert done.returncode == 1 and "is not a run folder" in done.stderr
    assert done.stderr.count("\n") == 1
    assert not (folder / "report.html").exists()
    (folder / "manifest.json").write_text('{"run_id": "x", "crea')  # truncated
    done = _cli(tmp_path, "report", str(folder))
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "manifest" in done.stderr and "cannot be read" in done.stderr
    assert not (folder / "report.html").exists()


def test_report_never_writes_through_a_symlink(tmp_path: Path) -> None:
    from ibcbench.results.runs import new_run

    run = new_run("sym", root=tmp_path / "runs")
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (run.path / "report.html").symlink_to(target)
    done = _cli(tmp_path, "report", str(run.path))
    assert done.returncode == 1 and "is a symlink" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1
    assert target.read_text() == "keep me\n" and (run.path / "report.html").is_symlink()
    with pytest.raises(RunError, match=r"is a symlink: remove it"):
        run.replace_file("report.html", "x")


def test_run_files_stay_inside_the_run_folder(tmp_path: Path) -> None:
    import pandas as pd

    from ibcbench.plans.capture import save_plans
    from ibcbench.results.recorded import save_frame
    from ibcbench.results.runs import new_run

    run = new_run("paths", root=tmp_path / "runs")
    frame = pd.DataFrame({"x": [1]})
    for bad in ("../../escaped", "/tmp/escaped_abs", "a/b"):
        with pytest.raises(ConfigError):
            save_frame(frame, bad, run)
        with pytest.raises(ConfigError):
            run.subdir(bad if bad != "a/b" else "../x")
        with pytest.raises(ConfigError):
            save_plans({bad: None}, run.path / "plans")  # type: ignore[dict-item]
    assert not list(tmp_path.glob("escaped*")) and not Path("/tmp/escaped_abs.parquet").exists()


def test_a_plan_configuration_name_is_checked_when_built() -> None:
    from ibcbench.bench.explain import PlanConfig

    with pytest.raises(ConfigError, match=r"configuration name '../x' is invalid"):
        PlanConfig("../x")
    with pytest.raises(ConfigError, match=r"index strategy 'drop' of configuration a is unknown"):
        PlanConfig("a", "drop")
    with pytest.raises(ConfigError, match=r"setting name .* of configuration a is invalid"):
        PlanConfig("a", None, {"x;y": "1"})


def _as_nobody(work: Callable[[], object]) -> str:
    """The message of what ``work`` raises, run in a forked child as the user ``nobody`` (the
    modules are loaded already: the child reads nothing under root's folders)."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, report, and leave without pytest's teardown
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            try:
                work()
                message = "no error"
            except Exception as exc:
                message = str(exc)
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    return message


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become the user nobody")
def test_write_advice_says_what_to_do_per_errno(tmp_path: Path) -> None:
    from ibcbench.results.runs import new_run

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    tmp_path.chmod(0o755)
    try:
        message = _as_nobody(lambda: new_run("x", root=folder / "runs"))
    finally:
        folder.chmod(0o700)
    assert "permission denied writing" in message, message
    assert "make it writable there or set IBCBENCH_RUNS_DIR" in message
    assert "free space" not in message
    assert not (folder / "runs").exists()
