"""The PostgreSQL binaries the embedded server runs, the libraries it preloads, and its config.

:func:`find_pg_bindir` finds the server binaries, :func:`check_extensions_installed` refuses to start
without the preloaded libraries, :func:`resolve_license` picks the TimescaleDB edition, and
:func:`conf_text` / :func:`write_conf` write the kit's ``ibcbench.conf`` (included from
``postgresql.conf``) and ``pg_hba.conf`` on every start. No process is started here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from ibcbench.errors import MissingExtension, ServerError
from ibcbench.infra import serverauth
from ibcbench.settings import ServerSettings

if TYPE_CHECKING:
    import pwd

REQUIRED_PRELOADS = ("timescaledb", "pg_stat_statements", "pg_cron")
CONF_NAME = "ibcbench.conf"


def _conf_quote(value: str) -> str:
    """A postgresql.conf string value."""
    return "'" + value.replace("'", "''") + "'"


def _socket_list_item(path: str) -> str:
    """One folder of ``unix_socket_directories``, a comma-separated list: double-quoted, so a path
    with spaces or commas stays one folder."""
    return '"' + path.replace('"', '""') + '"'


def find_pg_bindir(explicit: Path | None = None) -> Path:
    """The PostgreSQL binaries to use: ``IBCBENCH_PG_BINDIR``, else the newest under /usr/lib/postgresql."""
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    elif os.environ.get("IBCBENCH_PG_BINDIR"):
        candidates.append(Path(os.environ["IBCBENCH_PG_BINDIR"]))
    else:
        root = Path("/usr/lib/postgresql")
        if root.is_dir():
            majors = sorted(
                (p for p in root.iterdir() if p.name.isdigit()),
                key=lambda p: int(p.name),
                reverse=True,
            )
            candidates.extend(p / "bin" for p in majors)
    for bindir in candidates:
        if (bindir / "postgres").exists() and (bindir / "initdb").exists():
            return bindir
    raise ServerError(
        "no PostgreSQL server binaries found: run `make setup` (scripts/install-system.sh) "
        "or set IBCBENCH_PG_BINDIR"
    )


def _pg_config(bindir: Path, flag: str) -> Path:
    exe = bindir / "pg_config"
    if not exe.exists():
        exe_path = shutil.which("pg_config")
        if exe_path is None:
            raise ServerError(
                "pg_config not found: install postgresql-server-dev or run `make setup`"
            )
        exe = Path(exe_path)
    out = subprocess.run([str(exe), flag], capture_output=True, text=True, check=True).stdout
    return Path(out.strip())


def check_extensions_installed(bindir: Path) -> None:
    """Refuse to start without the shared libraries the preload list names."""
    sharedir = _pg_config(bindir, "--sharedir") / "extension"
    pkglibdir = _pg_config(bindir, "--pkglibdir")
    major = bindir.parent.name
    missing = [
        ext
        for ext in REQUIRED_PRELOADS
        if not (sharedir / f"{ext}.control").exists() or not (pkglibdir / f"{ext}.so").exists()
    ]
    if missing:
        raise MissingExtension(
            f"extension(s) {', '.join(missing)} not installed for PostgreSQL {major}: "
            "run `make setup` (scripts/install-system.sh) as root"
        )


def timescaledb_default_version(bindir: Path) -> str | None:
    """The version ``CREATE EXTENSION timescaledb`` installs here (its control file's default)."""
    control = _pg_config(bindir, "--sharedir") / "extension" / "timescaledb.control"
    try:
        match = re.search(r"^default_version\s*=\s*'([^']+)'", control.read_text(), re.MULTILINE)
    except FileNotFoundError:
        return None
    return match.group(1) if match else None


def resolve_license(bindir: Path, requested: str | None) -> str:
    """``timescaledb.license`` to run with: ``requested``, else the Community edition where installed.

    Refuses the Community edition when the installed default version has no ``timescaledb-tsl``
    library (an Apache-only build), before anything is started.
    """
    version = timescaledb_default_version(bindir)
    tsl = _pg_config(bindir, "--pkglibdir") / f"timescaledb-tsl-{version}.so"
    has_community = version is not None and tsl.exists()
    if requested is None:
        return "timescale" if has_community else "apache"
    if requested == "timescale" and not has_community:
        raise MissingExtension(
            f"the TimescaleDB Community edition needs {tsl.name}, not installed for PostgreSQL "
            f"{bindir.parent.name} (an Apache-only build): run scripts/install-system.sh as root, "
            "or use the Apache edition with TIMESCALEDB_EDITION=apache"
        )
    return requested


def conf_text(settings: ServerSettings, port: int, license_: str = "timescale") -> str:
    """The kit's ``ibcbench.conf`` for a server of ``settings`` on ``port``."""
    s = settings
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    shared_mb = min(s.shared_buffers_mb, max(128, total_mb // 4))
    values = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": _conf_quote(_socket_list_item(str(s.socket_dir))),
        "unix_socket_permissions": "0700",
        "password_encryption": "'scram-sha-256'",
        "max_connections": "200",
        "shared_preload_libraries": "'" + ",".join(REQUIRED_PRELOADS) + "'",
        "cron.database_name": f"'{s.database}'",
        "cron.use_background_workers": "on",
        # TimescaleDB runs one job scheduler per database that has the extension, each holding a
        # background worker for as long as the database exists: a server with many databases
        # (datasets, test databases) needs room, or jobs in the newer ones never run
        "max_worker_processes": "96",
        "timescaledb.telemetry_level": "off",
        "timescaledb.license": f"'{license_}'",
        "timescaledb.max_background_workers": "64",
        "max_locks_per_transaction": "256",
        "shared_buffers": f"{shared_mb}MB",
        "effective_cache_size": f"{max(512, total_mb // 2)}MB",
        "work_mem": "16MB",
        "maintenance_work_mem": "512MB",
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
        "pg_stat_statements.track": "all",
        "pg_stat_statements.max": "10000",
        "track_io_timing": "on",
        "logging_collector": "off",
        "log_timezone": "'UTC'",
        "timezone": "'UTC'",
    }
    lines = ["# written by `ibcbench db up` on every start; edit ServerSettings instead"]
    lines += [f"{k} = {v}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def write_conf(
    settings: ServerSettings,
    port: int,
    license_: str,
    user: pwd.struct_passwd | None,
    hba_text: str = serverauth.HBA_TEXT,
) -> None:
    """``ibcbench.conf``, its include in ``postgresql.conf``, and ``pg_hba.conf`` (mode 0600) in the
    data directory of ``settings``, owned by the server ``user``."""
    data = settings.data_dir
    conf = data / CONF_NAME
    conf.write_text(conf_text(settings, port, license_))
    main = data / "postgresql.conf"
    text = main.read_text()
    include = f"include '{CONF_NAME}'"
    if include not in text:
        main.write_text(text.rstrip("\n") + f"\n\n{include}\n")
    hba = data / "pg_hba.conf"
    hba.write_text(hba_text)
    os.chmod(hba, 0o600)
    if user is not None:
        for path in (conf, main, hba):
            os.chown(path, user.pw_uid, user.pw_gid)
