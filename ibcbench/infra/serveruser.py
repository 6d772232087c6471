"""The OS user the embedded server runs as, its folders, and running its programs as that user.

PostgreSQL refuses to run as root, so when the kit runs as root its clusters, standbys and PgBouncer
run as an unprivileged system user (``ServerSettings.os_user``, ``ibcbench`` by default).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ibcbench.errors import ServerError
from ibcbench.settings import ServerSettings


def server_user(settings: ServerSettings) -> pwd.struct_passwd:
    """The OS user that owns and runs the cluster when the kit runs as root (PostgreSQL refuses
    root), created on first use as a system user without a login shell."""
    name = settings.os_user
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run(
        [
            useradd,
            "--system",
            "--no-create-home",
            "--home-dir",
            str(settings.home),
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            name,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ServerError(
            f"could not create the OS user {name!r} to run PostgreSQL: {proc.stderr.strip()}"
        )
    return pwd.getpwnam(name)


def prepare_dirs(settings: ServerSettings, user: pwd.struct_passwd | None) -> None:
    """The home, cluster and socket folders, owned by the server user; the cluster's and the
    socket's mode 0700."""
    s = settings
    for path in (s.home, s.cluster_dir, s.socket_dir):
        path.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)
    # the cluster's files and its socket are the server user's alone (root reaches them too)
    for path in (s.cluster_dir, s.socket_dir):
        os.chmod(path, 0o700)
    if user is not None:
        # every parent must be traversable by the server user
        for parent in s.home.parents:
            if parent.exists() and not _traversable(parent, user):
                raise ServerError(
                    f"{parent} is not traversable by the server user {user.pw_name!r}: "
                    "set IBCBENCH_HOME to a folder under /var/lib or /srv"
                )


def _traversable(folder: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` may pass through ``folder``: its owner's, group's or others' x bit, the one
    that applies to that user (a 0700 folder the server user owns is traversable by it)."""
    st = os.stat(folder)
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & 0o100)
    groups = {user.pw_gid, *(g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem)}
    if st.st_gid in groups:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def run_as(
    settings: ServerSettings,
    args: list[str],
    user: pwd.struct_passwd | None,
    *,
    check: bool = True,
    timeout: float = 120,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program as the server user (``user``; None: the current user) in the
    cluster folder of ``settings``, without the caller's ``PG*`` variables; ``extra_env`` (e.g.
    ``PGPASSWORD``) reaches it through its environment, never its command line."""
    kwargs: dict[str, Any] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    env.update(extra_env or {})
    if user is not None:
        kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        env["HOME"] = str(settings.home)
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        cwd=settings.cluster_dir,
        env=env,
        timeout=timeout,
        **kwargs,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit code {proc.returncode}"
        raise ServerError(f"{Path(args[0]).name} failed: {last} (log: {settings.log_file})")
    return proc
