"""``ibcbench lab``: a working copy of notebooks/, the kit's kernel by default, options passed on,
and a warning when it listens beyond this machine."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ibcbench.cli import main
from ibcbench.suite.lab import is_loopback, lab_notebooks
from ibcbench.suite.notebook import notebooks_dir

TOKEN = "ibcbench-test-token"


@pytest.mark.parametrize(
    ("ip", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("*", False),
        ("::", False),
        ("192.168.1.5", False),
    ],
)
def test_is_loopback(ip: str, loopback: bool) -> None:
    assert is_loopback(ip) is loopback


def test_the_working_copy_is_made_once_and_kept(tmp_path: Path) -> None:
    first = lab_notebooks(tmp_path)
    assert first.created
    names = sorted(p.name for p in first.path.glob("*.ipynb"))
    assert names == sorted(p.name for p in notebooks_dir().glob("*.ipynb")) and names
    edited = first.path / names[0]
    edited.write_text("{}")
    again = lab_notebooks(tmp_path)
    assert not again.created and again.path == first.path
    assert edited.read_text() == "{}"


def test_listening_beyond_localhost_warns_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    seen: list[list[str]] = []

    def execve(exe: str, argv: list[str], env: dict[str, str]) -> None:
        seen.append(argv)
        raise SystemExit(0)

    monkeypatch.setenv("IBCBENCH_RUNS_DIR", str(tmp_path))
    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr("ibcbench.suite.notebook.ensure_kernel", lambda: "ibcbench")
    for argv, warned in [
        (["--ip", "0.0.0.0"], True),
        (["--ip", "127.0.0.1", "--", "--ServerApp.ip=0.0.0.0"], True),
        (["--ip", "127.0.0.1"], False),
    ]:
        with pytest.raises(SystemExit):
            main(["lab", "--no-browser", "--dsn", "host=/nowhere", *argv])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "warning" in line]
        if warned:
            assert len(lines) == 1 and "SSH tunnel" in lines[0] and "token" in lines[0]
        else:
            assert lines == []
    assert seen[1][-1] == "--ServerApp.ip=0.0.0.0"  # passed on, last: it wins


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(base: str, path: str, method: str = "GET", body: object = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def _digests() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(notebooks_dir().glob("*.ipynb"))
    }


@pytest.mark.db
@pytest.mark.timeout(180)
def test_the_lab_runs_the_kits_kernel_and_leaves_tracked_notebooks_alone(
    server_dsn: str, tmp_path: Path
) -> None:
    port = _free_port()
    before = _digests()
    env = dict(
        os.environ, IBCBENCH_RUNS_DIR=str(tmp_path), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt")
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ibcbench.cli",
            "lab",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-browser",
            "--dsn",
            server_dsn,
            "--",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.port_retries=0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            if f"127.0.0.1:{port}/lab" in line:
                break
        assert any(f"127.0.0.1:{port}/lab" in s for s in seen), "".join(seen)
        assert any("runs/lab/notebooks" in s or "lab/notebooks" in s for s in seen)
        for _ in range(60):  # the URL line may come a moment before the socket answers
            try:
                specs = _api(base, "/api/kernelspecs")
                break
            except urllib.error.URLError:
                time.sleep(0.5)
        else:
            raise AssertionError(f"no answer on {base}: {''.join(seen)}")
        assert isinstance(specs, dict) and specs["default"] == "ibcbench"
        name = sorted(before)[0]
        model = _api(base, f"/api/contents/{name}?content=1")
        assert isinstance(model, dict)
        nb = model["content"]
        code = next(c for c in nb["cells"] if c["cell_type"] == "code")
        code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "an output\n"}]
        code["execution_count"] = 1
        _api(
            base,
            f"/api/contents/{name}",
            "PUT",
            {"type": "notebook", "format": "json", "content": nb},
        )
        saved = json.loads((tmp_path / "lab" / "notebooks" / name).read_text())
        assert any(c.get("outputs") for c in saved["cells"] if c["cell_type"] == "code")
        assert _digests() == before
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
