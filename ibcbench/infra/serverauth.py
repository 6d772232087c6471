"""Authentication of the embedded server: its password, the file that keeps it, and its URLs.

The kit's role has a password (scram-sha-256) generated when the cluster is created. It is kept in
``<cluster_dir>/pgpass``, a libpq password file (``*:*:*:<role>:<password>``) readable by the user
who runs the kit only (mode 0600), and the URLs the kit gives out name that file with the
``passfile`` parameter instead of holding the password. ``pg_hba.conf`` asks every connection,
local or TCP, ordinary or replication, for the password: no line trusts anyone.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import quote

from ibcbench.errors import ServerError

PASSFILE_NAME = "pgpass"
#: every pg_hba.conf line of the embedded server and of its standbys
HBA_TEXT = (
    "# written by `ibcbench db up`: every connection gives the kit role's password (scram-sha-256)\n"
    "local all all scram-sha-256\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n"
    "# streaming standbys of `ibcbench db up --replicas N` (ibcbench.infra.standbys)\n"
    "local replication all scram-sha-256\n"
    "host replication all 127.0.0.1/32 scram-sha-256\n"
    "host replication all ::1/128 scram-sha-256\n"
)
#: the pg_hba.conf a cluster made before passwords starts with while its role gets one: the unix
#: socket only, whose folder only the server user (and root) can enter
BOOTSTRAP_HBA_TEXT = (
    "# written by `ibcbench db up` while the kit role gets its password: the socket only\n"
    "local all all trust\n"
)


def new_password() -> str:
    return secrets.token_urlsafe(24)


def _escape(field: str) -> str:
    return field.replace("\\", "\\\\").replace(":", "\\:")


def write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """``path`` holding ``text``, mode 0600 from its creation on, owned by ``owner`` (uid, gid;
    None: the user running the kit); written whole or not at all."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    if owner is not None:
        os.chown(tmp, *owner)
    os.replace(tmp, path)


def write_passfile(path: Path, role: str, password: str) -> None:
    """``path`` holding ``role``'s password for any host, port and database, readable by the user
    running the kit only."""
    write_private(path, f"*:*:*:{_escape(role)}:{_escape(password)}\n")


def read_password(path: Path, role: str) -> str | None:
    """``role``'s password in the password file ``path`` (None: no file, or no line for it)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        fields: list[str] = []
        current, escaped = "", False
        for ch in line:
            if escaped:
                current, escaped = current + ch, False
            elif ch == "\\":
                escaped = True
            elif ch == ":" and len(fields) < 4:
                fields.append(current)
                current = ""
            else:
                current += ch
        fields.append(current)
        if len(fields) == 5 and fields[3] in ("*", role):
            return fields[4]
    return None


def check_passfile(path: Path) -> None:
    """Refuse a password file others can read (libpq would ignore it and ask for a password)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ServerError(
            f"{path} can be read by other users (mode {mode:o}): run `chmod 600 {path}`"
        )


def has_trust_line(hba_text: str) -> bool:
    """Whether a pg_hba.conf lets any connection in without a password."""
    for line in hba_text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and "trust" in words[3:5]:
            return True
    return False


def url(role: str, host: str, port: int, database: str, passfile: str | None) -> str:
    """``postgresql://role@host:port/database``, with ``?passfile=`` when ``passfile`` is given."""
    base = f"postgresql://{quote(role, safe='')}@{host}:{port}/{quote(database, safe='')}"
    return base + (f"?passfile={quote(passfile, safe='/')}" if passfile else "")


def socket_url(role: str, socket_dir: str, port: int, database: str, passfile: str | None) -> str:
    """The unix-socket URL (``?host=<socket dir>``), with ``passfile`` when given."""
    base = f"postgresql://{quote(role, safe='')}@/{quote(database, safe='')}"
    base += f"?host={quote(socket_dir, safe='/')}&port={port}"
    return base + (f"&passfile={quote(passfile, safe='/')}" if passfile else "")


def url_with_password(role: str, host: str, port: int, database: str, password: str) -> str:
    """A URL that holds the password itself (for tools that take no password file)."""
    return (
        f"postgresql://{quote(role, safe='')}:{quote(password, safe='')}@{host}:{port}/"
        f"{quote(database, safe='')}"
    )
