"""Faults of the group ``security``: who reaches the embedded server, and whom ``db down`` signals.

- another OS user (``nobody``) tries the lab's cluster by TCP (no password, a guessed one, the kit's
  own URL, whose password file is not theirs) and by its unix socket: each must be refused;
- a stopped cluster's ``postmaster.pid`` names a live process that is not its postmaster (a process
  of the server user, one sitting in the data directory, another cluster's postmaster): ``db down``
  must leave each alive and say the file is stale, and ``db up`` must start the cluster.

Both need root (``runuser``, a process started as the server user); elsewhere they are not run.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time

from ibcbench.faults.lab import FaultLab, start_server
from ibcbench.faults.registry import FaultOutcome, fault
from ibcbench.infra.server import LocalServer
from ibcbench.infra.serverconf import find_pg_bindir
from ibcbench.settings import ServerSettings

GROUP = "security"
OTHER_USER = "nobody"
STALE_CLUSTER = "security-pid"
#: what libpq says when the server asks for a password it has not got, or the socket is closed
REFUSALS = ("no password supplied", "password authentication failed", "Permission denied")


def _not_run(name: str, expected: str, why: str) -> FaultOutcome:
    return FaultOutcome(GROUP, name, expected, why, False, ran=False)


def _as_other_user(conninfo: str, **env: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql") or str(find_pg_bindir() / "psql")
    return subprocess.run(
        ["runuser", "-u", OTHER_USER, "--", psql, "-w", "-Atc", "SELECT 1", conninfo],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/", **env},
        cwd="/",
    )


@fault(GROUP, fast=True)
def fault_access_other_os_user(lab: FaultLab) -> list[FaultOutcome]:
    """Another OS user is refused by TCP and by the socket."""
    name = "access_other_os_user"
    expected = f"{OTHER_USER} is refused: no password by TCP, permission denied on the socket"
    if os.geteuid() != 0:
        return [_not_run(name, expected, "needs root to run psql as another OS user")]
    try:
        pwd.getpwnam(OTHER_USER)
    except KeyError:
        return [_not_run(name, expected, f"no OS user {OTHER_USER!r} here")]
    state = lab.server.read_state()
    assert state is not None  # the lab's server runs
    tcp = f"postgresql://{state.role}@127.0.0.1:{state.port}/{state.database}"
    cases = {
        "tcp, no password": (tcp, {}),
        "tcp, a guessed password": (tcp, {"PGPASSWORD": state.role}),
        "tcp, the kit's URL": (state.url, {}),
        "socket": (f"host={state.socket_dir} port={state.port} user={state.role}", {}),
    }
    outcomes = []
    for case, (conninfo, env) in cases.items():
        proc = _as_other_user(conninfo, **env)
        said = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0]
        refused = proc.returncode != 0 and any(r in proc.stderr for r in REFUSALS)
        happened = (
            f"refused: {said[-160:]}"
            if refused
            else f"NOT REFUSED (exit {proc.returncode}): {(proc.stdout + said).strip()[:160]}"
        )
        outcomes.append(FaultOutcome(GROUP, f"{name}: {case}", expected, happened, refused))
    return outcomes


def _write_stale_pidfile(server: LocalServer, pid: int) -> None:
    state = server.read_state()
    assert state is not None
    data_dir = server.settings.data_dir
    (data_dir / "postmaster.pid").write_text(
        f"{pid}\n{data_dir}\n1700000000\n{state.port}\n{state.socket_dir}\n127.0.0.1\n"
        "  1234567     65536\nready   \n"
    )


@fault(GROUP, fast=True)
def fault_access_stale_postmaster_pid(lab: FaultLab) -> list[FaultOutcome]:
    """A stale postmaster.pid naming a live process: ``db down`` signals nothing, ``db up`` starts."""
    name = "access_stale_postmaster_pid"
    expected = "db down leaves the process alive and says the PID file is stale; db up starts"
    if os.geteuid() != 0:
        return [_not_run(name, expected, "needs root to start a process as the server user")]
    settings = ServerSettings(home=lab.home, name=STALE_CLUSTER, shared_buffers_mb=32)
    server = LocalServer(settings)

    def stop() -> None:
        server.down()

    lab.on_close(stop)
    start_server(server)
    server.down()
    lab_pid = int((lab.settings.data_dir / "postmaster.pid").read_text().split()[0])
    user = settings.os_user
    sleepers = [
        subprocess.Popen(["sleep", "300"], user=user, cwd="/"),
        subprocess.Popen(["sleep", "300"], user=user, cwd=settings.data_dir),
    ]
    cases = [
        ("a process of the server user", sleepers[0]),
        ("a process in the data directory", sleepers[1]),
        ("the lab cluster's postmaster", None),
    ]
    outcomes = []
    try:
        for case, proc in cases:
            pid = proc.pid if proc is not None else lab_pid
            _write_stale_pidfile(server, pid)
            result = lab.cli("db", "down", "--name", STALE_CLUSTER)
            time.sleep(0.3)
            alive = (proc.poll() is None) if proc is not None else lab.server.is_running()
            said = (result.stdout.strip().splitlines() or [result.brief()])[0]
            ok = alive and result.returncode == 0 and "is stale" in said
            happened = ("alive" if alive else "KILLED") + f"; db down: {said[:200]}"
            outcomes.append(FaultOutcome(GROUP, f"{name}: {case}", expected, happened, ok))
        up = lab.cli("db", "up", "--name", STALE_CLUSTER)
        started = up.returncode == 0 and server.is_running()
        alive = all(p.poll() is None for p in sleepers) and lab.server.is_running()
        outcomes.append(
            FaultOutcome(
                GROUP,
                f"{name}: db up after it",
                "db up starts the cluster, the other processes live on",
                ("started" if started else f"NOT STARTED ({up.brief()})")
                + ("; the others alive" if alive else "; ANOTHER PROCESS DIED"),
                started and alive,
            )
        )
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
        server.down()
    return outcomes
