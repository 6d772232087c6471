"""`ibcbench run-all` on a server that is not the kit's embedded one, with no PgBouncer and no
standby given: notebook 03 skips its PgBouncer paths and 07 its replica parts, saying why, and both
notebooks succeed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ibcbench.results.recorded import read_recorded
from tests.conftest import create_database

pytestmark = [pytest.mark.db, pytest.mark.notebook]

EXTERNAL_CLUSTER = "ext"


@pytest.fixture(scope="module")
def external_dsn() -> Iterator[str]:
    """A database on a second cluster, reached by its conninfo only (as an external server is): its
    folder is one level below the kit's home, where the kit does not look for its own clusters."""
    from ibcbench.infra.server import LocalServer
    from ibcbench.settings import ServerSettings, default_home

    home = default_home() / "outside"
    server = LocalServer(ServerSettings(name=EXTERNAL_CLUSTER, home=home))
    state = server.up().state
    yield create_database(state.conninfo("postgres"), "ext_bench")
    server.down()
    shutil.rmtree(home, ignore_errors=True)


def test_run_all_skips_what_an_external_server_lacks(external_dsn: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PGBOUNCER_URL", "REPLICA_URL")}
    env.update(IBCBENCH_CLUSTER="no-such-cluster", IBCBENCH_RUNS_DIR=str(tmp_path))
    env.pop("DATABASE_URL", None)
    short = ["-p", "duration_s", "0.3"]
    short += ["-p", "path_duration_s", "0.3", "-p", "max_sizes", "[4]"]
    short += ["-p", "prepared", "[true]", "-p", "path_clients", "[2]"]
    cmd = [sys.executable, "-m", "ibcbench.cli", "run-all", "--scale", "tiny"]
    cmd += ["--notebooks", "03,07", "--dsn", external_dsn, *short]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    manifest = json.loads((run / "manifest.json").read_text())
    assert [n["ok"] for n in manifest["notebooks"]] == [True, True], manifest["notebooks"]
    assert manifest["pgbouncer"].startswith("not available: ")
    assert manifest["replicas"].startswith("not available: ")
    (nb03,) = run.rglob("03_*.ipynb")
    (nb07,) = run.rglob("07_*.ipynb")
    pool = read_recorded(nb03)
    assert pool["pgbouncer"].startswith("not available: the server is not the kit's embedded one")
    assert pool["direct_python_2c_qps"] > 0  # the rest of 03 ran
    replicas = read_recorded(nb07)
    assert replicas["replicas"].startswith("not available: the primary is not the kit's embedded")
    # one line each in the notebook's output (stderr), and the reasons in the report
    assert "PgBouncer's connection paths skipped: the server" in nb03.read_text()
    assert "the replica measurements skipped: the primary" in nb07.read_text()
    report = (run / "report.html").read_text()
    assert "not available: the server is not the kit&#39;s embedded one: give PgBouncer" in report
    assert "not available: the primary is not the kit&#39;s embedded server: give its" in report
