"""The run lock: one ``run`` / ``run-all`` at a time per server; a second waits or refuses."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from ibcbench.cli import main
from ibcbench.errors import ConnectionFailed
from ibcbench.suite.runlock import RunLockBusy, holder, run_lock


@pytest.mark.db
def test_a_second_lock_is_refused_naming_the_run_that_holds_it(server_dsn: str) -> None:
    with run_lock(server_dsn) as held:
        held.name_run("20261201-000000-first")
        with (
            pytest.raises(
                RunLockBusy,
                match=rf"run 20261201-000000-first \(pid {os.getpid()}\) holds the run lock of this "
                "server: nothing was started",
            ),
            run_lock(server_dsn, wait=False),
        ):
            pass
    with run_lock(server_dsn, wait=False):  # released with its session
        pass


@pytest.mark.db
def test_a_waiting_run_says_whom_it_waits_for_and_goes_on_after_it(server_dsn: str) -> None:
    events: list[str] = []
    lines: list[str] = []
    taken = threading.Event()
    release = threading.Event()

    def first() -> None:
        with run_lock(server_dsn) as held:
            held.name_run("first")
            events.append("first has it")
            taken.set()
            release.wait(30)
            events.append("first lets go")

    thread = threading.Thread(target=first)
    thread.start()
    assert taken.wait(30)

    def second() -> None:
        with run_lock(server_dsn, on_wait=lines.append, poll_s=0.05):
            events.append("second has it")

    waiter = threading.Thread(target=second)
    waiter.start()
    deadline = time.monotonic() + 30
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
    release.set()
    thread.join(30)
    waiter.join(30)
    assert events == ["first has it", "first lets go", "second has it"]
    assert lines == [
        f"ibcbench: waiting for run first (pid {os.getpid()}) to finish (one run at a time per "
        "server; Ctrl-C to give up)"
    ]


@pytest.mark.db
@pytest.mark.parametrize(
    "argv",
    [
        ["run", "02_index_strategies.ipynb", "-p", "scale", "tiny", "--no-wait"],
        ["run-all", "--scale", "tiny", "--no-wait"],
    ],
)
def test_run_and_run_all_refuse_in_one_line_while_another_run_works(
    server_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    """Two runs at once broke each other's notebooks (four failed, an INVALID index stayed): the
    second now waits, or refuses."""
    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(tmp_path))
    with run_lock(server_dsn) as held:
        held.name_run("20261201-000000-all-tiny")
        assert main([*argv, "--dsn", server_dsn]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        err.startswith("ibcbench: error: run 20261201-000000-all-tiny (pid ")
        and "holds the run lock of this server: nothing was started" in err
    )
    assert list(tmp_path.iterdir()) == []  # no run folder


@pytest.mark.db
def test_nobody_holds_a_free_lock(server_dsn: str) -> None:
    import psycopg

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        assert holder(conn) is None


@pytest.mark.db
def test_a_waiter_that_loses_its_session_says_so_in_one_line(server_dsn: str) -> None:
    """A waiting run whose session ends (a server restart, pg_terminate_backend) gives a one-line
    error, not psycopg's traceback."""
    import psycopg

    errors: list[BaseException] = []

    def wait_for_it() -> None:
        try:
            with run_lock(server_dsn, poll_s=0.05):
                pass
        except BaseException as exc:
            errors.append(exc)

    with run_lock(server_dsn) as held:
        held.name_run("holder")
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                    (f"ibcbench run (starting, pid {os.getpid()})",),
                ).fetchone()
                if row:
                    admin.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                    break
                time.sleep(0.05)
        waiter.join(30)
    assert len(errors) == 1 and isinstance(errors[0], ConnectionFailed)
    message = str(errors[0])
    assert "\n" not in message
    assert message.startswith("the connection to the server was lost while taking the run lock")
    assert message.endswith(
        "nothing was started; check the server (`ibcbench db status`) and run the command again"
    )
