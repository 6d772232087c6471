"""SIGTERM, SIGHUP and Ctrl-C stop ``run`` and ``run-all`` alike: the kernel is shut down, the manifest
says the run was interrupted and why, the run lock is free, one line on stderr, exit 128 + signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ibcbench.cli import main
from ibcbench.signals import Stopped, default_sigint, stop_on_signals
from ibcbench.suite.notebook import NotebookResult
from ibcbench.suite.runlock import run_lock

#: the probe's cell writes the kernel's pid here, in the run folder, then sleeps
KERNEL_PID = "kernel.pid"


def _probe(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "ibcbench",
        "display_name": "ibcbench",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("run_dir = None\ndsn = None\nsleep_s = 120")
    params.metadata["tags"] = ["parameters"]
    work = nbformat.v4.new_code_cell(
        "import os, pathlib, time\n"
        f"pathlib.Path(run_dir, {KERNEL_PID!r}).write_text(str(os.getpid()))\n"
        "time.sleep(sleep_s)"
    )
    nb.cells = [params, work]
    path = tmp_path / "99_sleeper.ipynb"
    nbformat.write(nb, path)
    return path


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _processes_naming(text: str) -> list[int]:
    """Processes whose command line holds ``text`` (a kernel started with a connection file there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return [p for p in found if _running(p)]


def _wait_for_kernel(proc: subprocess.Popen[Any], runs: Path) -> tuple[Path, int]:
    """The run folder once its manifest says running and the notebook's kernel runs the cell."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for folder in runs.glob("*"):
            manifest = folder / "manifest.json"
            marker = folder / KERNEL_PID
            if manifest.exists() and marker.exists() and marker.read_text():
                assert json.loads(manifest.read_text())["status"] == "running"
                return folder, int(marker.read_text())
        time.sleep(0.1)
    raise AssertionError("the notebook's kernel did not start within 120 s")


@pytest.mark.db
@pytest.mark.parametrize(
    ("signum", "code", "said", "reason"),
    [
        (signal.SIGTERM, 143, "stopped by SIGTERM", "stopped by SIGTERM"),
        (signal.SIGHUP, 129, "stopped by SIGHUP", "stopped by SIGHUP"),
        (signal.SIGINT, 130, "interrupted", "interrupted by SIGINT (Ctrl-C)"),
    ],
)
def test_a_signalled_run_stops_its_kernel_marks_its_manifest_and_frees_the_lock(
    server_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: int,
    code: int,
    said: str,
    reason: str,
) -> None:
    """A run killed with SIGTERM stayed ``running`` with its kernel alive and the kernel's
    ``kernel-ipc-*`` sockets in the run folder (and its connection file in the temp folder)."""
    probe = _probe(tmp_path)
    runs = tmp_path / "runs"
    tmp = (
        tmp_path / "tmp"
    )  # the command's temp folder: the kernel's private runtime folder goes there
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(IBCBENCH_RUNS_DIR=str(runs), TMPDIR=str(tmp))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibcbench.cli", "run", str(probe), "--dsn", server_dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=default_sigint,
    )
    try:
        folder, kernel = _wait_for_kernel(proc, runs)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, err
    assert err == (
        f"ibcbench: {said}: run {folder.name} is marked interrupted; what it wrote is kept in "
        f"{folder}\n"
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["status"], manifest["error"]) == ("interrupted", reason)
    assert sorted(p.name for p in folder.iterdir()) == [
        "99_sleeper.ipynb",
        KERNEL_PID,
        "logs",
        "manifest.json",
    ]
    assert not _running(kernel)
    assert _processes_naming(str(tmp)) == []
    assert list(tmp.iterdir()) == []  # the connection file and its folder are gone
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(runs))
    again = ["run", str(probe), "-p", "sleep_s", "1", "--no-wait", "--dsn", server_dsn]
    assert main(again) == 0  # the run lock is free


@pytest.mark.db
def test_run_all_stopped_mid_way_records_the_notebooks_it_got_to(
    server_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def notebook(nb: Path, run: Any, params: Any, **kw: Any) -> NotebookResult:
        if nb.name.startswith("05"):
            raise Stopped(signal.SIGTERM)  # as the signal does, from the middle of papermill
        (run.path / nb.name).write_text("{}")
        return NotebookResult(nb.name, run.path / nb.name, 1.0)

    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(tmp_path))
    monkeypatch.setattr("ibcbench.suite.notebook.run_notebook", notebook)
    argv = ["run-all", "--notebooks", "04,05,06", "--no-wait", "--dsn", server_dsn]
    assert main(argv) == 143
    (folder,) = tmp_path.iterdir()
    err = capsys.readouterr().err
    assert err == (
        f"ibcbench: stopped by SIGTERM: run {folder.name} is marked interrupted; what it wrote is "
        f"kept in {folder}\n"
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["status"], manifest["error"]) == ("interrupted", "stopped by SIGTERM")
    assert [(n["notebook"], n["ok"], n["error"]) for n in manifest["notebooks"]] == [
        ("04_query_plans.ipynb", True, None),
        ("05_timescale.ipynb", False, "stopped by SIGTERM"),
    ]
    monkeypatch.setattr("ibcbench.suite.notebook.run_notebook", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # the lock is free: the next run-all gets to work
        main(argv)


def test_an_ignored_signal_stays_ignored_and_handlers_come_back() -> None:
    """Under ``nohup`` SIGHUP is ignored: a closed terminal must not stop the command then."""
    hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with stop_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
            with pytest.raises(Stopped) as stopped:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises at the next bytecode; this is not reached
            assert stopped.value.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, hup)
        signal.signal(signal.SIGTERM, term)


@pytest.mark.db
def test_a_run_stopped_while_it_waits_for_the_lock_says_nothing_was_started(
    server_dsn: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["IBCBENCH_RUNS_DIR"] = str(tmp_path / "runs")
    with run_lock(server_dsn) as held:
        held.name_run("holder")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ibcbench.cli",
                "run",
                str(_probe(tmp_path)),
                "--dsn",
                server_dsn,
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stderr is not None
        try:
            waiting = proc.stderr.readline()  # the run waits, and says for whom
            assert waiting.startswith("ibcbench: waiting for run holder (pid ")
            proc.send_signal(signal.SIGTERM)
            rest = proc.stderr.read()
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 143
    assert (
        rest == "ibcbench: stopped by SIGTERM: nothing was started (it waited for the run lock)\n"
    )
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


@pytest.mark.db
def test_a_killed_run_leaves_no_kernel_sockets_in_its_run_folder(
    server_dsn: str, tmp_path: Path
) -> None:
    """SIGKILL leaves no time to clean up: the kernel's sockets and connection file stay behind, in
    the private folder under the temp folder, not among the run's results (``kernel-ipc-1`` ... were
    in the run folder: the kernel's working directory)."""
    runs, tmp = tmp_path / "runs", tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(IBCBENCH_RUNS_DIR=str(runs), TMPDIR=str(tmp))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibcbench.cli", "run", str(_probe(tmp_path)), "--dsn", server_dsn],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    kernel = None
    try:
        folder, kernel = _wait_for_kernel(proc, runs)
        proc.kill()
        proc.wait(timeout=30)
        assert sorted(p.name for p in folder.iterdir()) == [
            "99_sleeper.ipynb",
            KERNEL_PID,
            "logs",
            "manifest.json",
        ]
        (private,) = tmp.iterdir()
        assert private.name.startswith("ibcbench-kernel-")
        assert private.stat().st_mode & 0o777 == 0o700
        assert "kernel.json" in {p.name for p in private.iterdir()}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if kernel is not None and _running(kernel):
            os.kill(kernel, signal.SIGKILL)
