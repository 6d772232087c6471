"""A small filesystem of the suite's own to fill: a tmpfs mounted under the lab's workdir.

Mounting needs root: a process that is not root cannot, and a fault that needs one says so and
counts as not run. The tests use it too (a tablespace that fills up under a load).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

#: why a disk fault cannot run as another user than root
NOT_ROOT = "not run: mounting a small filesystem needs root"


def can_mount() -> bool:
    """Whether this process can mount a tmpfs (root, with ``mount`` on the PATH)."""
    return os.geteuid() == 0 and shutil.which("mount") is not None


class SmallFilesystem:
    """A tmpfs of ``size_bytes`` mounted at ``path`` (made, and removed by :meth:`unmount`).

    ``owner`` (an OS user) owns its root, mode 0700: a tablespace's location for the server user."""

    def __init__(self, path: Path, size_bytes: int, *, owner: str | None = None) -> None:
        if not can_mount():
            raise PermissionError(NOT_ROOT)
        self.path = path
        options = [f"size={int(size_bytes)}", "mode=0700" if owner else "mode=0755"]
        if owner:
            user = pwd.getpwnam(owner)
            options += [f"uid={user.pw_uid}", f"gid={user.pw_gid}"]
        path.mkdir(parents=True, exist_ok=False)
        try:
            _run("mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path))
        except BaseException:
            path.rmdir()
            raise

    @property
    def mounted(self) -> bool:
        return os.path.ismount(self.path)

    def resize(self, size_bytes: int) -> None:
        _run("mount", "-o", f"remount,size={int(size_bytes)}", str(self.path))

    def used_bytes(self) -> int:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def size_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_blocks * st.f_frsize

    def fill(self) -> Path:
        """Write a file until the filesystem is full; returns it (remove it to free the space)."""
        ballast = self.path / "ballast"
        block = b"\0" * (1 << 16)
        with contextlib.suppress(OSError), open(ballast, "wb", buffering=0) as fh:
            while True:
                fh.write(block)
        return ballast

    def unmount(self) -> None:
        if self.mounted:
            _run("umount", str(self.path))
        with contextlib.suppress(FileNotFoundError):
            self.path.rmdir()


def _run(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
