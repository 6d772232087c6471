"""Notebook plumbing: parameters, recorded values, papermill execution into a run folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

from ibcbench.results.recorded import RECORD_MIME, _jsonable, read_recorded
from ibcbench.results.runs import new_run
from ibcbench.suite.notebook import numbered_notebooks, parse_parameter, run_notebook


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("3", 3),
        ("0.5", 0.5),
        ("true", True),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ("tiny", "tiny"),
        ('"42"', "42"),
    ],
)
def test_parameters_parse_like_json_else_string(raw: str, value: object) -> None:
    assert parse_parameter(raw) == value


def test_jsonable_turns_numpy_and_nan_into_plain_json() -> None:
    out = _jsonable(
        {"a": np.float64(1.5), "b": np.int64(3), "c": float("nan"), "d": (1, np.bool_(True))}
    )
    assert out == {"a": 1.5, "b": 3, "c": None, "d": [1, True]}
    json.dumps(out)


def _notebook(tmp_path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "ibcbench",
        "display_name": "ibcbench",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("x = 1\nrun_dir = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    path = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, path)
    return path


def test_run_notebook_records_values_into_the_run_folder(tmp_path: Path) -> None:
    source = _notebook(
        tmp_path,
        ["from ibcbench.results.recorded import record", "record(doubled=x * 2, where=run_dir)"],
    )
    run = new_run("probe", root=tmp_path / "runs")
    result = run_notebook(source, run, {"x": 21})
    assert result.ok
    assert result.output == run.path / "99_probe.ipynb"
    assert result.recorded == {"doubled": 42, "where": str(run.path)}
    assert read_recorded(result.output) == result.recorded


def test_the_kernel_listens_on_unix_sockets_not_tcp(tmp_path: Path) -> None:
    source = _notebook(
        tmp_path,
        [
            "from ipykernel.kernelapp import IPKernelApp\n"
            "from ibcbench.results.recorded import record\n"
            "record(transport=IPKernelApp.instance().transport)"
        ],
    )
    result = run_notebook(source, new_run("ipc", root=tmp_path / "runs"))
    assert result.recorded == {"transport": "ipc"}


def test_a_failing_notebook_is_written_and_reported(tmp_path: Path) -> None:
    source = _notebook(tmp_path, ["raise ValueError('boom at step 2')"])
    run = new_run("fail", root=tmp_path / "runs")
    result = run_notebook(source, run)
    assert not result.ok
    assert result.error == "ValueError: boom at step 2"
    assert result.output.exists()


def test_read_recorded_merges_records_in_order(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={RECORD_MIME: {"a": 1, "b": 2}, "text/plain": ""}
        ),
        nbformat.v4.new_output("display_data", data={RECORD_MIME: {"b": 3}, "text/plain": ""}),
    ]
    nb.cells = [cell]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert read_recorded(path) == {"a": 1, "b": 3}


def test_the_numbered_notebooks_are_stripped_and_use_the_kit_kernel() -> None:
    notebooks = numbered_notebooks()
    assert notebooks, "no numbered notebooks found"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "ibcbench", path.name
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), path.name
        assert all(not c.outputs and c.execution_count is None for c in code), (
            f"{path.name} has outputs"
        )
        assert code[-1].source.startswith(("record(", "record_results(")), (
            f"{path.name}: the last cell must record its key numbers"
        )


#: what a notebook cell must not hold: it is a call and a display, the logic lives in the package
NOT_IN_NOTEBOOKS = {
    "def ": "a function definition",
    "lambda": "a function definition",
    "with connect(": "a connection block",
    "__import__": "a hidden import",
    ".iloc[": "a value picked by position",
    "SELECT ": "SQL",
    "try:": "a retry",
    "while ": "a loop",
    "for ": "a loop",
    "Run(": "a run folder built by hand",
    "write_text(": "a file written by hand",
}


@pytest.mark.parametrize("path", numbered_notebooks(), ids=lambda p: p.stem)
def test_notebook_cells_are_calls_and_displays(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code[1:]:  # the parameters cell is plain assignments
        for token, what in NOT_IN_NOTEBOOKS.items():
            assert token not in cell.source, f"{path.name}: {what} in a cell:\n{cell.source}"
        # arithmetic on results belongs in the result's key_numbers(): no operators on values
        for op in (" / ", " * ", " - ", " + ", "==", " < ", " > "):
            assert op not in cell.source, (
                f"{path.name}: arithmetic ({op.strip()}) in:\n{cell.source}"
            )
    params = code[0].source
    assert "run_dir = None" in params and "dsn = None" in params, path.name


PASSWORD = "pw-s3cr3t-9f2c"


@pytest.mark.db
def test_a_password_in_the_dsn_reaches_no_file_of_the_run_folder(
    tmp_path: Path, server_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from ibcbench.cli import main
    from ibcbench.infra.serverauth import read_password

    # the embedded server's real password, in the DSN instead of its password file (a server that
    # trusts local connections accepts and ignores PASSWORD)
    params = conninfo_to_dict(server_dsn)
    passfile = params.pop("passfile", None)
    secret = (
        read_password(Path(passfile), str(params.get("user"))) if passfile else None
    ) or PASSWORD
    dsn = make_conninfo(**params, password=secret)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "ibcbench",
        "display_name": "ibcbench",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("dsn = None\nrun_dir = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from ibcbench.db import connect\nfrom ibcbench.results.recorded import record\n"
            "with connect(dsn) as conn:\n    database = conn.info.dbname\n"
            "record(database=database, dsn_parameter=dsn)"
        ),
    ]
    source = tmp_path / "99_secret.ipynb"
    nbformat.write(nb, source)
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["run", str(source), "--dsn", dsn, "--label", "secret"]) == 0
    out = capsys.readouterr()
    assert "database: postgres" in out.out  # the kernel reached the server through DATABASE_URL
    assert secret not in out.out + out.err
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in files) and any(
        p.suffix == ".ipynb" for p in files
    )
    for path in files:
        assert secret not in path.read_text(errors="replace"), path
    assert "DATABASE_URL" not in os.environ


@pytest.mark.db
def test_a_server_restart_during_a_notebook_fails_its_run_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Every cell runs, but the server restarted in between: the run is failed, and says why.
    The restart is of a cluster of the test's own (the shared test server stays up)."""
    import threading

    from ibcbench.cli import main
    from ibcbench.faults.lab import FaultLab

    marker, go = tmp_path / "in-the-cell", tmp_path / "go-on"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "ibcbench",
        "display_name": "ibcbench",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("dsn = None\nrun_dir = None\nmarker = ''\ngo = ''")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "import pathlib, time\npathlib.Path(marker).write_text('in')\n"
            "deadline = time.time() + 120\n"
            "while not pathlib.Path(go).exists() and time.time() < deadline:\n"
            "    time.sleep(0.05)"
        ),
        nbformat.v4.new_code_cell(
            "from ibcbench.results.recorded import record\nrecord(done=True)"
        ),
    ]
    source = tmp_path / "99_restart.ipynb"
    nbformat.write(nb, source)
    runs = tmp_path / "runs"
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(runs))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with FaultLab("tiny") as lab:

        def restart_in_the_cell() -> None:
            try:
                if FaultLab.wait_for(marker.exists, timeout=120):
                    lab.restart("fast")
            finally:
                go.write_text("go")

        restarter = threading.Thread(target=restart_in_the_cell, daemon=True)
        restarter.start()
        args = ["run", str(source), "--dsn", lab.admin_dsn, "-p", "marker", str(marker)]
        rc = main([*args, "-p", "go", str(go)])
        restarter.join()
    out = capsys.readouterr()
    assert rc == 1
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("ibcbench: error: 99_restart.ipynb failed: the server restarted")
    (run,) = runs.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"].startswith("the server restarted while 99_restart.ipynb ran")
    assert read_recorded(run / "99_restart.ipynb") == {"done": True}  # every cell did run


def test_the_kernels_own_output_goes_to_its_log_not_the_commands_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # a kernel stopped while a cell fails logs on its own stderr (fd 2): that must not become a
    # second line of the command's one-line error
    source = _notebook(tmp_path, ["import os\nos.write(2, b'kernel fd2 noise\\n')"])
    run = new_run("kernel-log", root=tmp_path / "runs")
    result = run_notebook(source, run)
    assert result.ok, result.error
    assert "kernel fd2 noise" not in capfd.readouterr().err
    assert "kernel fd2 noise" in (run.path / "logs" / f"{source.stem}.kernel.log").read_text()
