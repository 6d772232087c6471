"""The command line: bad input is refused in one line that says what to do next, before any work.

Every case runs with ``DATABASE_URL`` at a closed port: a command that reached the database before
refusing would fail with "cannot connect" instead of the expected message. No run folder appears.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ibcbench.cli import main

CLOSED = "postgresql://nobody@127.0.0.1:1/none"

BAD_INPUTS = [
    (["run-all", "--scale", "bogus"], "scale 'bogus' is unknown: use one of tiny"),
    (["seed", "--scale", "bogus"], "scale 'bogus' is unknown"),
    (["generate", "--scale", "bogus", "--out", "OUT"], "scale 'bogus' is unknown"),
    (["bench", "workload", "--scale", "bogus"], "scale 'bogus' is unknown"),
    (["bench", "fidelity", "--scale", "bogus"], "scale 'bogus' is unknown"),
    (["bench", "capacity", "--scale", "bogus"], "scale 'bogus' is unknown"),
    (["bench", "generate", "--scale", "bogus"], "scale 'bogus' is unknown"),
    (["plans", "capture", "--config", "x", "--scale", "bogus"], "scale 'bogus' is unknown"),
    (["seed", "--packets", "-5"], "--packets: -5 must be at least 1"),
    (["seed", "--packets", "0"], "--packets: 0 must be at least 1"),
    (["seed", "--packets", "abc"], "--packets: 'abc' is not a whole number"),
    (["generate", "--days", "0", "--out", "OUT"], "--days: 0 must be a number above 0"),
    (["seed", "--days", "x"], "--days: 'x' is not a number"),
    (["seed", "--seed", "-1"], "--seed: -1 must be 0 or more"),
    (["bench", "workload", "--duration", "-1"], "--duration: -1 must be a number above 0"),
    (["bench", "workload", "--duration", "nan"], "--duration: nan must be a number above 0"),
    (["bench", "workload", "--clients", "0"], "--clients: 0 must be at least 1"),
    (["bench", "workload", "--rate", "-3"], "--rate: -3 must be a number above 0"),
    (["bench", "workload", "--repeat", "0"], "--repeat: 0 must be at least 1"),
    (["bench", "workload", "--queries", "nope"], "has no query 'nope': use one of"),
    (["bench", "fidelity", "--clients", "1,0"], "--clients: 0 in '1,0' must be at least 1"),
    (["bench", "fidelity", "--query", "nope"], "has no query 'nope': use one of"),
    (["bench", "capacity", "--sizes", "a"], "--sizes: 'a' in 'a' is not a whole number"),
    (["bench", "capacity", "--sizes", "4,-1"], "--sizes: -1 in '4,-1' must be at least 1"),
    (["bench", "capacity", "--duration", "0"], "--duration: 0 must be a number above 0"),
    (["bench", "load", "--rounds", "0"], "--rounds: 0 must be at least 1"),
    (["bench", "load", "--packets", "-1"], "--packets: -1 must be at least 1"),
    (["bench", "generate", "--rounds", "-2"], "--rounds: -2 must be at least 1"),
    (["seed", "--start", "notadate"], "--start: 'notadate' is not a date: give ISO 8601"),
    (["seed", "--start", "2026-01-01"], "--start: '2026-01-01' has no time zone: add one"),
    (["nosuch"], "invalid choice: 'nosuch'"),
    ([], "the following arguments are required: COMMAND"),
    (["seed", "--nope"], "unrecognized arguments: --nope"),
    (["run", "nb.ipynb"], "notebook nb.ipynb does not exist: give a notebook path, or one of"),
    (["run", "02_index_strategies.ipynb", "-p", "scale", "bogus"], "scale 'bogus' is unknown"),
    (
        ["run", "02_index_strategies.ipynb", "-p", "repetitions", "-3"],
        "parameter repetitions of 02_index_strategies.ipynb must be above 0, not -3",
    ),
    (
        ["run", "02_index_strategies.ipynb", "-p", "repetitions", "many"],
        "parameter repetitions of 02_index_strategies.ipynb must be a whole number",
    ),
    (
        ["run", "02_index_strategies.ipynb", "-p", "bogus", "1"],
        "notebook 02_index_strategies.ipynb has no parameter 'bogus': its parameters are scale",
    ),
    (
        ["run", "03_pool_settings.ipynb", "-p", "max_sizes", "[1,-2]"],
        "parameter max_sizes of 03_pool_settings.ipynb has an item -2 that must be above 0",
    ),
    (
        ["run", "03_pool_settings.ipynb", "-p", "prepared", "yes"],
        "parameter prepared of 03_pool_settings.ipynb must be a JSON list",
    ),
    (["run", "02_index_strategies.ipynb", "-p", "seed", "-4"], "must be 0 or more"),
    (["run-all", "-p", "nosuch", "1"], "no notebook has a parameter 'nosuch'"),
    (["run-all", "--notebooks", "09"], "--notebooks: no numbered notebook '09': use one of 01_"),
    (["run-all", "--notebooks", ","], "--notebooks is empty: give one or more"),
    (["run-all", "-p", "repetitions", "0"], "parameter repetitions of 02_index_strategies"),
]


def _ids(value: object) -> str | None:
    return " ".join(value)[:60] if isinstance(value, list) else None


def run_cli(argv: list[str]) -> int:
    """``main(argv)``, with the parser's exit (SystemExit) as a return code."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS, ids=_ids)
def test_bad_input_is_one_line_with_a_hint_before_any_work(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", CLOSED)
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    code = run_cli(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err
    assert len(lines) == 1, err
    assert lines[0].startswith("ibcbench: error: ")
    assert message in lines[0]
    assert "cannot connect" not in lines[0]  # refused before any database work
    # a pointer to what to do next: --help, the choices, or the value to give
    assert any(
        hint in lines[0]
        for hint in ("--help", "use one of", "give ", "its parameters are", "see ", "add one")
    )
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (
            "postgresql://someone:pw-s3cr3t-91@127.0.0.1:1/x",
            "cannot connect to someone@127.0.0.1:1/x",
        ),
        ("postgresql://someone:pw-s3cr3t-91@[bad", "invalid DSN 'postgresql://someone:***@[bad'"),
        ("host=127.0.0.1 port=1 password=pw-s3cr3t-91 user=u", "cannot connect to u@127.0.0.1:1/"),
        ("host=127.0.0.1 port=notaport password='pw-s3cr3t-91'", 'for connection option "port"'),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["bench", "workload", "--scale", "tiny"],
        ["run", "02_index_strategies.ipynb"],
        ["run-all"],
        ["seed"],
        ["schema", "up"],
    ],
    ids=_ids,
)
def test_a_bad_dsn_is_one_line_without_its_password(
    dsn: str,
    shown: str,
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(tmp_path / "runs"))
    code = run_cli([*command, "--dsn", dsn])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert shown in lines[0] and "pw-s3cr3t-91" not in err
    assert "DATABASE_URL" in lines[0]  # what to fix
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
