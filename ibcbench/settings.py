"""Settings: where the embedded server lives and which database every command talks to.

One frozen object per concern, built from arguments or the environment and validated on creation.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ibcbench.errors import ConfigError

#: The OS user that runs the embedded server when the kit is invoked as root.
DEFAULT_OS_USER = "ibcbench"
#: The database (and role) the kit creates in its embedded server.
DEFAULT_DATABASE = "ibcbench"
DEFAULT_ROLE = "ibcbench"
#: First port tried for a new embedded server; the next free one is taken when it is busy.
DEFAULT_FIRST_PORT = 54329

_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}\Z")

#: ``timescaledb.license`` values: the Community edition (Timescale License) and the Apache edition.
TIMESCALEDB_LICENSES = ("timescale", "apache")
#: ``TIMESCALEDB_EDITION`` (the variable ``scripts/install-system.sh`` reads) to ``timescaledb.license``.
_EDITION_LICENSES = {"community": "timescale", "timescale": "timescale", "apache": "apache"}


def default_home() -> Path:
    """The folder that holds the kit's embedded servers.

    ``IBCBENCH_HOME`` wins; root uses ``/var/lib/ibcbench`` (a folder the unprivileged server user can
    reach, unlike ``/root``); anyone else uses ``$XDG_DATA_HOME/ibcbench``.
    """
    env = os.environ.get("IBCBENCH_HOME")
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/lib/ibcbench")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "ibcbench"


def license_from_env() -> str | None:
    """``timescaledb.license`` for ``TIMESCALEDB_EDITION`` (community or apache); None when unset."""
    edition = os.environ.get("TIMESCALEDB_EDITION", "").strip().lower()
    if not edition:
        return None
    if edition not in _EDITION_LICENSES:
        raise ConfigError(
            f"TIMESCALEDB_EDITION={edition!r} is not an edition: use community (default) or apache"
        )
    return _EDITION_LICENSES[edition]


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """The embedded server: a cluster folder under ``home``, named ``name``.

    ``timescaledb_license`` is written into the server's configuration: ``'timescale'`` runs the
    Community edition, ``'apache'`` the Apache edition of the same install; None takes
    ``TIMESCALEDB_EDITION``, else the Community edition where it is installed and Apache otherwise.
    """

    home: Path = field(default_factory=default_home)
    name: str = field(default_factory=lambda: os.environ.get("IBCBENCH_CLUSTER", "default"))
    port: int | None = None
    os_user: str = DEFAULT_OS_USER
    database: str = DEFAULT_DATABASE
    role: str = DEFAULT_ROLE
    pg_bindir: Path | None = None
    shared_buffers_mb: int = 1024
    timescaledb_license: str | None = field(default_factory=license_from_env)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(
                f"cluster name {self.name!r} is invalid: use 1-32 lower-case letters, digits, '-' or '_'"
            )
        if self.port is not None and not 1024 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range: pick a port from 1024 to 65535")
        if self.shared_buffers_mb < 16:
            raise ConfigError("shared_buffers_mb must be at least 16")
        if (
            self.timescaledb_license is not None
            and self.timescaledb_license not in TIMESCALEDB_LICENSES
        ):
            raise ConfigError(
                f"timescaledb_license {self.timescaledb_license!r} is invalid: "
                "use 'timescale' (Community edition) or 'apache'"
            )

    @property
    def cluster_dir(self) -> Path:
        return self.home / self.name

    @property
    def data_dir(self) -> Path:
        return self.cluster_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.cluster_dir / "run"

    @property
    def log_file(self) -> Path:
        return self.cluster_dir / "server.log"

    @property
    def state_file(self) -> Path:
        return self.cluster_dir / "server.json"


#: libpq's connection variables: any of them set (and no DSN given) means libpq's own defaults,
#: as psql takes them. The kit's own subprocesses of its clusters drop every ``PG*`` variable.
LIBPQ_VARIABLES = (
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGPASSWORD",
)


def libpq_environment() -> dict[str, str]:
    """The libpq connection variables that are set (non-empty), by name."""
    return {k: os.environ[k] for k in LIBPQ_VARIABLES if os.environ.get(k)}


def explicit_dsn(dsn: str | None = None) -> str | None:
    """The DSN the user chose, if any: ``dsn`` (``--dsn``), else ``DATABASE_URL``, else ``""`` (an
    empty conninfo: libpq reads ``PGHOST``, ``PGPORT``, ... itself) when any of
    :data:`LIBPQ_VARIABLES` is set; None means the embedded server."""
    if dsn:
        return dsn
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return "" if libpq_environment() else None
