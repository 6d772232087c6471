"""Standbys and PgBouncer beside the embedded primary, against the real processes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from ibcbench.cli import main
from ibcbench.commands.db import format_members
from ibcbench.errors import ConfigError
from ibcbench.infra.members import TopologyState, processes_with_argument
from ibcbench.infra.memberstatus import topology_status
from ibcbench.infra.scaleout import ScaleOut
from ibcbench.settings import ServerSettings

pytestmark = [pytest.mark.db]


def _pg_ctl_status(topo: ScaleOut, data_dir: Path) -> int:
    """pg_ctl status, as the server's OS user (pg_ctl refuses root): 3 when no server runs there."""
    bindir = topo.server.read_state().bindir  # type: ignore[union-attr]
    args = [f"{bindir}/pg_ctl", "-D", str(data_dir), "status"]
    return topo.server._run(args, topo.server._server_user(), check=False).returncode


def _processes_of(cluster_dir: Path) -> list[str]:
    """Command lines of live processes that name a path inside ``cluster_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if (
            any(a.startswith(str(cluster_dir) + "/") for a in args)
            and int(entry.name) != os.getpid()
        ):
            found.append(" ".join(args))
    return found


def test_db_up_replicas_pgbouncer_then_status_url_and_down(
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = "test-topo-cli"
    topo = ScaleOut(ServerSettings(name=name))
    try:
        assert main(["db", "up", "--name", name, "--replicas", "1", "--pgbouncer"]) == 0
        out = capsys.readouterr().out
        assert "replica-1: postgresql://" in out and "pgbouncer: postgresql://" in out
        assert main(["db", "url", "--name", name, "--role", "replica"]) == 0
        replica = capsys.readouterr().out.strip()
        assert main(["db", "url", "--name", name, "--role", "pgbouncer"]) == 0
        bouncer = capsys.readouterr().out.strip()
        with psycopg.connect(replica, autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        with psycopg.connect(bouncer, autocommit=True, prepare_threshold=None) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
            text = format_members(topology_status(settings=topo.settings))
        assert "replica:     replica-1" in text and "(streaming)" in text
        assert "slot ibcbench_replica_1: active" in text
        assert "pool ibcbench/ibcbench: cl_active 1" in text  # this connection, through PgBouncer
        members = {m.name: m for m in topo.members()}
        assert {"primary", "replica-1", "pgbouncer"} <= set(members) and all(
            m.running for m in members.values()
        )
        # the standby and PgBouncer run as the primary's OS user
        owners = {
            os.stat(f"/proc/{p}").st_uid for p in processes_with_argument(str(topo.pgbouncer_ini))
        }
        assert owners == {os.stat(topo.settings.data_dir).st_uid}
    finally:
        assert main(["db", "down", "--name", name]) == 0
    out = capsys.readouterr().out
    assert (
        "pgbouncer stopped" in out
        and "replica-1 stopped" in out
        and "embedded server stopped" in out
    )
    assert _pg_ctl_status(topo, topo.settings.data_dir) == 3  # 3: no server running
    assert _pg_ctl_status(topo, topo.replica_dir(1)) == 3
    assert _processes_of(topo.settings.cluster_dir) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replicas": 99}, "replicas must be between 0 and 8"),
        ({"replicas": -1}, "replicas must be between 0 and 8"),
        (
            {"pool_mode": "statement"},
            "pool mode 'statement' is unknown: use transaction or session",
        ),
        ({"pool_size": 0}, "pool_size must be between 1 and 150"),
    ],
)
def test_bad_shapes_are_refused_before_anything_starts(
    kwargs: dict, message: str, tmp_path: Path
) -> None:
    topo = ScaleOut(ServerSettings(home=tmp_path, name="never"))
    with pytest.raises(ConfigError, match=message):
        topo.up(**kwargs)
    assert not (tmp_path / "never").exists()


def test_url_of_a_missing_member_says_how_to_start_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IBCBENCH_HOME", str(tmp_path))
    assert main(["db", "url", "--name", "nothing", "--role", "replica"]) == 1
    assert (
        "no replica is running in 'nothing': run `ibcbench db up --replicas 1`"
        in capsys.readouterr().err
    )


def test_lag_is_measured_in_bytes_and_seconds(topology: ScaleOut) -> None:
    replica = topology.replica_urls()[0]
    primary = topology.server.url()
    with (
        psycopg.connect(replica, autocommit=True) as r,
        psycopg.connect(primary, autocommit=True) as p,
    ):
        p.execute("CREATE TABLE IF NOT EXISTS lag_probe (x int)")  # a commit the standby replays
        deadline = time.monotonic() + 30
        while r.execute("SELECT to_regclass('lag_probe')").fetchone()[0] is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r.execute("SELECT pg_wal_replay_pause()")
        try:
            p.execute("INSERT INTO lag_probe SELECT generate_series(1, 20000)")
            time.sleep(1.2)
            status = {m.role: m for m in topology_status(settings=topology.settings)}
            rep = status["replica"]
            assert rep.lag_bytes is not None and rep.lag_bytes > 100_000
            assert rep.lag_s is not None and rep.lag_s > 0.5
            assert "replay paused" in rep.detail
        finally:
            r.execute("SELECT pg_wal_replay_resume()")
            p.execute("DROP TABLE IF EXISTS lag_probe")
        deadline = time.monotonic() + 30
        while True:
            rep = {m.role: m for m in topology_status(settings=topology.settings)}["replica"]
            if rep.lag_bytes == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert rep.lag_bytes == 0


def test_a_restarted_standby_catches_up_from_its_slot(topology: ScaleOut) -> None:
    primary = topology.server.url()
    replica = topology.replica_urls()[0]
    topology._stop_replica(1)
    assert not topology.replica_running(1)
    with psycopg.connect(primary, autocommit=True) as p:
        p.execute("DROP TABLE IF EXISTS while_down")
        p.execute("CREATE TABLE while_down AS SELECT generate_series(1, 1000) AS x")
        slot = p.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = 'ibcbench_replica_1'"
        ).fetchone()
        assert slot == (False,)  # the slot keeps the WAL the standby has not received
    topology.up()  # the recorded shape: the standby is started again
    assert topology.replica_running(1)
    deadline = time.monotonic() + 30
    with psycopg.connect(replica, autocommit=True) as r:
        while r.execute("SELECT to_regclass('while_down')").fetchone()[0] is None:
            assert time.monotonic() < deadline, (
                "the standby did not replay what was written while it was down"
            )
            time.sleep(0.1)
        assert r.execute("SELECT count(*) FROM while_down").fetchone()[0] == 1000
    with psycopg.connect(primary, autocommit=True) as p:
        p.execute("DROP TABLE while_down")


def test_members_of_a_killed_run_are_cleaned_by_the_next_up(topology: ScaleOut) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs: the owner of a killed run
    state = topology.read_state()
    before = state.pgbouncer
    try:
        topology._stop_pgbouncer()
        topology._write_state(TopologyState(state.replicas, None))
        topology.up(pgbouncer=True, owner_pid=gone.pid)
        assert topology.pgbouncer_running()
        result = topology.up()
        assert any("pgbouncer of a run that is gone" in line for line in result.cleaned)
        assert not topology.pgbouncer_running()
        assert processes_with_argument(str(topology.pgbouncer_ini)) == []
        # a PgBouncer the state does not name (a run killed before it wrote the state) is stopped too
        topology.up(pgbouncer=True)
        topology._write_state(TopologyState(topology.read_state().replicas, None))
        result = topology.up()
        assert any("pgbouncer not in topology.json stopped" in line for line in result.cleaned)
        assert processes_with_argument(str(topology.pgbouncer_ini)) == []
    finally:
        topology._stop_pgbouncer()
        topology._write_state(TopologyState(topology.read_state().replicas, None))
        if before is not None:
            topology.up(
                pgbouncer=True,
                pool_mode=before.pool_mode,
                pool_size=before.pool_size,
                owner_pid=before.owner_pid,
            )


def test_pool_mode_is_switched_and_session_mode_keeps_prepared_statements(
    topology: ScaleOut,
) -> None:
    before = topology.read_state().pgbouncer
    assert before is not None and before.pool_mode == "transaction"
    try:
        topology.up(pgbouncer=True, pool_mode="session")
        url = topology.pgbouncer_url()
        assert url is not None
        with psycopg.connect(url, autocommit=True, prepare_threshold=0) as conn:
            for _ in range(3):
                assert conn.execute("SELECT %s::int", (1,)).fetchone() == (1,)
        pools = next(
            m for m in topology_status(settings=topology.settings) if m.role == "pgbouncer"
        )
        assert "session pooling" in pools.detail
    finally:
        topology.up(pgbouncer=True, pool_mode=before.pool_mode)


def test_an_external_topology_is_given_by_url(
    topology: ScaleOut, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    replica, bouncer = topology.replica_urls()[0], topology.pgbouncer_url()
    assert bouncer is not None
    monkeypatch.setenv("DATABASE_URL", topology.server.url())
    monkeypatch.setenv("REPLICA_URL", f"{replica},{replica}")  # comma-separated: two standbys
    monkeypatch.setenv("PGBOUNCER_URL", bouncer)
    members = topology_status()
    assert [m.role for m in members] == ["primary", "replica", "replica", "pgbouncer"]
    assert all(m.running for m in members)
    monkeypatch.delenv("REPLICA_URL")
    assert main(["db", "status", "--replica-dsn", replica, "--pgbouncer-dsn", bouncer]) == 0
    out = capsys.readouterr().out
    assert "replica:" in out and "pgbouncer:" in out and "running" in out


def _psql_as_nobody(url: str) -> subprocess.CompletedProcess[str]:
    import shutil

    from ibcbench.infra.serverconf import find_pg_bindir

    psql = shutil.which("psql") or str(find_pg_bindir() / "psql")
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", psql, "-w", "-Atc", "SELECT 1", url],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], "HOME": "/"},
        cwd="/",
    )


def test_standbys_and_pgbouncer_ask_for_the_password_they_keep_to_the_server_user(
    topology: ScaleOut,
) -> None:
    import stat

    from ibcbench.infra.serverauth import has_trust_line

    primary = topology.server.read_state()
    assert primary is not None and primary.passfile
    password = primary.password()
    assert password
    server_uid = topology.server._server_user()
    uid = server_uid.pw_uid if server_uid else os.geteuid()
    replica = topology.read_state().replicas[0]
    folder = topology.replica_dir(replica.index)
    secrets = [folder / "postgresql.auto.conf", topology.pgbouncer_dir / "userlist.txt"]
    for path in secrets:
        info = os.stat(path)
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == uid, path
        assert password in path.read_text(), path
    for path in [folder / "ibcbench.conf", topology.pgbouncer_ini, topology.state_file]:
        assert password not in path.read_text(), path
    assert not has_trust_line((folder / "pg_hba.conf").read_text())
    assert "auth_type = scram-sha-256" in topology.pgbouncer_ini.read_text()
    bouncer = topology.pgbouncer_url()
    urls = [*topology.replica_urls(), bouncer, topology.pgbouncer_admin_url()]
    for url in urls:
        assert url is not None and password not in url and "passfile=" in url
        with psycopg.connect(url, autocommit=True) as conn:  # the kit's own URLs work
            conn.execute("SHOW VERSION" if "/pgbouncer?" in url else "SELECT 1")
        plain = url.split("?", 1)[0]
        proc = _psql_as_nobody(plain)
        assert proc.returncode != 0 and "no password supplied" in proc.stderr, (url, proc.stderr)


def test_a_stale_pgbouncer_pidfile_is_not_signalled(tmp_path: Path) -> None:
    """A pidfile naming a live process that is not this PgBouncer: not running, not stopped."""
    topo = ScaleOut(ServerSettings(home=tmp_path, name="stale-bouncer"))
    topo.pgbouncer_dir.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        topo.pgbouncer_pidfile.write_text(f"{sleeper.pid}\n")
        assert not topo.pgbouncer_running()
        assert not topo._stop_pgbouncer()
        time.sleep(0.2)
        assert sleeper.poll() is None, "a process that is not PgBouncer was signalled"
    finally:
        sleeper.kill()
        sleeper.wait()
