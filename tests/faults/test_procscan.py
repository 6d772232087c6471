"""procscan on a process tree this test starts: a shell with two ``sleep`` children."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from ibcbench.faults.procscan import CmdlineWatch, cmdline, descendants, parent_pids


def _wait(predicate: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


#: the command lines of the tree's children
WANT = ["sleep 61", "sleep 62"]


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    """``sh`` running ``sleep 61`` in the background and ``sleep 62`` in front (then ``:``, so the
    shell stays the parent of both); its ``$0`` holds a secret."""
    proc = subprocess.Popen(["sh", "-c", "sleep 61 & sleep 62; :", "s3cr3t-shell"])
    try:
        # both children started and exec'd sleep (a forked child shows the shell's line until then)
        _wait(lambda: sorted(map(str, map(cmdline, descendants(proc.pid)[1:]))) == WANT)
        yield proc
    finally:
        proc.kill()
        for pid in descendants(proc.pid)[1:]:
            os.kill(pid, 9)
        proc.wait()


def test_descendants_are_the_root_then_its_children(tree: subprocess.Popen[bytes]) -> None:
    found = descendants(tree.pid)
    assert found[0] == tree.pid and len(found) == 3
    assert sorted(cmdline(pid) for pid in found[1:]) == [  # type: ignore[type-var]
        "sleep 61",
        "sleep 62",
    ]
    assert cmdline(tree.pid) == "sh -c sleep 61 & sleep 62; : s3cr3t-shell"
    parents = parent_pids()
    assert parents[tree.pid] == os.getpid()
    assert [parents[pid] for pid in found[1:]] == [tree.pid, tree.pid]


def test_cmdline_joins_arguments_and_is_none_once_the_process_is_gone() -> None:
    proc = subprocess.Popen(["sh", "-c", "sleep 63; :", "two words"])
    try:
        assert _wait(lambda: cmdline(proc.pid) == "sh -c sleep 63; : two words")
    finally:
        for pid in descendants(proc.pid)[1:]:
            os.kill(pid, 9)
        proc.kill()
        proc.wait()
    assert cmdline(proc.pid) is None
    assert descendants(proc.pid) == [proc.pid]  # a gone root: only itself (its child is gone)


def test_cmdline_watch_sees_the_tree_and_the_lines_holding_a_secret(
    tree: subprocess.Popen[bytes],
) -> None:
    watch = CmdlineWatch(tree.pid, ["s3cr3t", ""])
    with watch:
        _wait(lambda: len(watch.seen) == 3)
    assert watch.secrets == ["s3cr3t"]  # an empty secret is no secret
    assert watch.hits == {"sh -c sleep 61 & sleep 62; : s3cr3t-shell"}
    assert watch.seen == {"sh -c sleep 61 & sleep 62; : s3cr3t-shell", "sleep 61", "sleep 62"}
    assert watch.ran("sleep") and watch.ran("sh") and not watch.ran("pgbench")
