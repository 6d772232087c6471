"""Fixtures for tests that talk to the real PostgreSQL + TimescaleDB server.

The test session starts (or reuses) the kit's embedded cluster named ``test`` — never the user's
``default`` cluster — with TimescaleDB's Community edition (``timescaledb.license=timescale``), and works
in databases it creates and drops itself. Edition-sensitive tests take the ``edition_*`` fixtures, which
run them once per edition: the Apache edition on a second cluster, ``test-apache``, started from the same
install with ``timescaledb.license=apache``. ``TIMESCALEDB_EDITION=apache`` (an Apache-only install) runs
everything on ``test`` with the Apache edition. ``scripts/test`` stops both clusters.

``IBCBENCH_TEST_ADMIN_DSN`` points the suite at another server instead (a DSN to its ``postgres``
database, as a superuser), and ``IBCBENCH_TEST_APACHE_ADMIN_DSN`` at one running the Apache edition.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ibcbench.signals import default_sigint

TEST_CLUSTER = "test"
APACHE_CLUSTER = "test-apache"
#: edition -> the timescaledb.license value that runs it
EDITION_LICENSES = {"community": "timescale", "apache": "apache"}
PRIMARY_EDITION = (
    "apache" if os.environ.get("TIMESCALEDB_EDITION", "").lower() == "apache" else "community"
)
EDITIONS = ("apache",) if PRIMARY_EDITION == "apache" else ("community", "apache")
_counter = itertools.count()


@dataclass(frozen=True)
class EditionServer:
    """A test server running one TimescaleDB edition."""

    edition: str  # 'community' or 'apache'
    license: str  # its timescaledb.license
    admin_dsn: str  # its postgres database
    cluster: str | None  # the embedded cluster's name (None: an external server)


def _dsn_for(admin_dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(admin_dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


def _start_server(edition: str) -> EditionServer:
    """Start (or reuse) the embedded cluster of ``edition`` and check that it runs that edition."""
    license_ = EDITION_LICENSES[edition]
    env = (
        "IBCBENCH_TEST_ADMIN_DSN"
        if edition == PRIMARY_EDITION
        else "IBCBENCH_TEST_APACHE_ADMIN_DSN"
    )
    external = os.environ.get(env)
    if os.environ.get("IBCBENCH_TEST_ADMIN_DSN") and not external:
        pytest.fail(f"the {edition} edition's tests need a server: set {env}")
    cluster = None
    if external:
        dsn = external
    else:
        from ibcbench.infra.server import LocalServer
        from ibcbench.settings import ServerSettings

        cluster = TEST_CLUSTER if edition == PRIMARY_EDITION else APACHE_CLUSTER
        settings = ServerSettings(name=cluster, timescaledb_license=license_)
        state = LocalServer(settings).up().state
        dsn = state.conninfo("postgres")  # the unix socket, with the kit's password file
    with psycopg.connect(dsn) as conn:
        running = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
    assert running == (license_,), f"{cluster or dsn} runs timescaledb.license={running[0]!r}"
    return EditionServer(edition, license_, dsn, cluster)


@pytest.fixture(scope="session")
def primary_server() -> EditionServer:
    """The main test server: the Community edition (the Apache one under TIMESCALEDB_EDITION=apache)."""
    return _start_server(PRIMARY_EDITION)


@pytest.fixture(scope="session")
def server_dsn(primary_server: EditionServer) -> str:
    """DSN of the test server's ``postgres`` database."""
    return primary_server.admin_dsn


@pytest.fixture(scope="session", params=EDITIONS)
def edition_server(request: pytest.FixtureRequest) -> EditionServer:
    """Each TimescaleDB edition in turn: tests that take it run once per edition."""
    if request.param == PRIMARY_EDITION:
        return request.getfixturevalue("primary_server")
    return _start_server(request.param)


def create_database(admin_dsn: str, name: str) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _dsn_for(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def make_database(server_dsn: str) -> Iterator[Callable[[str], str]]:
    """Factory: ``make_database(hint) -> dsn`` of a fresh empty database, dropped after the test."""
    created: list[str] = []

    def make(hint: str = "db") -> str:
        safe = "".join(ch if ch.isalnum() else "_" for ch in hint.lower())[:30]
        name = f"t_{safe}_{os.getpid()}_{next(_counter)}"
        created.append(name)
        return create_database(server_dsn, name)

    yield make
    for name in created:
        drop_database(server_dsn, name)


@pytest.fixture(scope="session")
def schema_dsn(server_dsn: str) -> Iterator[str]:
    """A database with the whole schema migrated up. Shared by the session: leave it as you found it."""
    from ibcbench.infra.migrate import migrate_up

    name = f"t_schema_{os.getpid()}"
    dsn = create_database(server_dsn, name)
    migrate_up(dsn)
    yield dsn
    drop_database(server_dsn, name)


@pytest.fixture(scope="session")
def loaded_dsn(server_dsn: str) -> Iterator[str]:
    """Schema + the ``tiny`` dataset (seed 42). Shared by the session: read-only for tests."""
    name = f"t_loaded_{os.getpid()}"
    dsn = _loaded_database(server_dsn, name)
    yield dsn
    drop_database(server_dsn, name)


def _loaded_database(admin_dsn: str, name: str) -> str:
    from data_gen import GenerationParams
    from ibcbench.data.load import load_dataset
    from ibcbench.data.views import refresh_views
    from ibcbench.infra.migrate import migrate_up

    dsn = create_database(admin_dsn, name)
    migrate_up(dsn)
    load_dataset(dsn, GenerationParams(seed=42, scale="tiny"), quiet=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        refresh_views(conn)
        conn.execute("ANALYZE")
    return dsn


@pytest.fixture(scope="session")
def edition_schema_dsn(
    edition_server: EditionServer, request: pytest.FixtureRequest
) -> Iterator[str]:
    """``schema_dsn`` on each edition's server (the primary one is ``schema_dsn`` itself)."""
    if edition_server.edition == PRIMARY_EDITION:
        yield request.getfixturevalue("schema_dsn")
        return
    from ibcbench.infra.migrate import migrate_up

    name = f"t_schema_{edition_server.edition}_{os.getpid()}"
    dsn = create_database(edition_server.admin_dsn, name)
    migrate_up(dsn)
    yield dsn
    drop_database(edition_server.admin_dsn, name)


@pytest.fixture(scope="session")
def edition_loaded_dsn(
    edition_server: EditionServer, request: pytest.FixtureRequest
) -> Iterator[str]:
    """``loaded_dsn`` on each edition's server (the primary one is ``loaded_dsn`` itself)."""
    if edition_server.edition == PRIMARY_EDITION:
        yield request.getfixturevalue("loaded_dsn")
        return
    name = f"t_loaded_{edition_server.edition}_{os.getpid()}"
    dsn = _loaded_database(edition_server.admin_dsn, name)
    yield dsn
    drop_database(edition_server.admin_dsn, name)


@pytest.fixture(scope="session")
def apache_server(request: pytest.FixtureRequest) -> EditionServer:
    """The Apache-edition server (``test-apache``, or ``test`` under TIMESCALEDB_EDITION=apache)."""
    if PRIMARY_EDITION == "apache":
        return request.getfixturevalue("primary_server")
    return _start_server("apache")


TOPOLOGY_CLUSTER = "test-topo"


@pytest.fixture(scope="session")
def topology() -> Iterator[object]:
    """A small cluster of its own (``test-topo``: physical replication copies a whole cluster, and the
    suite's ``test`` cluster holds every test's databases) with one streaming standby and PgBouncer,
    owned by this session: removed at the end, or by the next ``db up`` if the session is killed."""
    from ibcbench.infra.scaleout import ScaleOut
    from ibcbench.settings import ServerSettings

    topo = ScaleOut(ServerSettings(name=TOPOLOGY_CLUSTER))
    with topo.started(replicas=1, pgbouncer=True):
        yield topo
    topo.down()


@pytest.fixture
def small_filesystem() -> Iterator[Callable[..., object]]:
    """Factory: ``small_filesystem(size_bytes, owner=None)``, a tmpfs (``fault_disk.SmallFilesystem``)
    under /var/tmp, unmounted after the test. Mounting needs root (CI runs as root): as another
    user the test fails with a message that says so, it never passes unseen."""
    import tempfile
    from pathlib import Path

    from ibcbench.faults.tmpfs import SmallFilesystem, can_mount

    if not can_mount():
        pytest.fail(
            "this test mounts a small tmpfs to fill it up, which needs root: run it as root "
            "(CI does)"
        )
    root = Path(tempfile.mkdtemp(prefix="ibcbench-space.", dir="/var/tmp"))
    os.chmod(root, 0o755)  # the server user reaches a tablespace below it
    mounted: list[SmallFilesystem] = []

    def mount(size_bytes: int, owner: str | None = None) -> SmallFilesystem:
        fs = SmallFilesystem(root / f"fs{len(mounted)}", size_bytes, owner=owner)
        mounted.append(fs)
        return fs

    yield mount
    for fs in mounted:
        fs.unmount()
    root.rmdir()


# ---- the fault suite, beside the rest ---------------------------------------------------------
#: the end-to-end fault suite test: its command starts when collection ends and runs on a cluster of
#: its own beside the other tests (they share nothing with it); the test itself runs last and waits
FAULT_SUITE_TEST = "test_bench_faults_tiny_every_fault_survives"


@dataclass
class BackgroundCommand:
    proc: subprocess.Popen[str]
    runs_dir: Path
    log: Path

    def wait(self, timeout: float) -> tuple[int, str, str]:
        """Its exit code, stdout and stderr (killed with its group after ``timeout`` seconds)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        out = self.log.with_suffix(".out").read_text()
        err = self.log.with_suffix(".err").read_text()
        return self.proc.returncode, out, err

    def stop(self) -> None:
        """SIGINT first (the suite then removes its cluster and folders), SIGKILL after a minute."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    last = [i for i in items if i.name == FAULT_SUITE_TEST]
    if not last:
        return
    items[:] = [i for i in items if i.name != FAULT_SUITE_TEST] + last
    folder = Path(tempfile.mkdtemp(prefix="ibcbench-faults-test."))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["IBCBENCH_RUNS_DIR"] = str(folder / "runs")
    log = folder / "faults"
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ibcbench.cli", "bench", "faults", "--scale", "tiny"],
            stdout=out,
            stderr=err,
            text=True,
            env=env,
            start_new_session=True,
            preexec_fn=default_sigint,
        )
    config.stash[_FAULTS_KEY] = BackgroundCommand(proc, folder / "runs", log)


_FAULTS_KEY = pytest.StashKey[BackgroundCommand]()


def pytest_unconfigure(config: pytest.Config) -> None:
    command = config.stash.get(_FAULTS_KEY, None)
    if command is not None:
        command.stop()
        shutil.rmtree(command.runs_dir.parent, ignore_errors=True)


@pytest.fixture
def fault_suite_tiny(request: pytest.FixtureRequest) -> BackgroundCommand:
    """``ibcbench bench faults --scale tiny``, started when collection ended (see above)."""
    return request.config.stash[_FAULTS_KEY]
