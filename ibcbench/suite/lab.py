"""JupyterLab on a working copy of the kit's notebooks, with the kit's kernel as the default.

The lab opens ``<runs>/lab/notebooks/`` (``IBCBENCH_RUNS_DIR``, else ``./runs``), a copy of
``notebooks/`` made on the first start and never overwritten afterwards: what a user runs and saves
there (outputs, edits) stays there, and the tracked notebooks stay as the repository has them (the
tests and ``run`` read those). A copy rather than a pre-save hook that strips outputs: the user keeps
their outputs, and no setting of JupyterLab decides what reaches a tracked file.
"""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ibcbench.results.runs import runs_root
from ibcbench.suite.notebook import KERNEL_NAME, notebooks_dir

#: the working copy's folder under the runs folder
LAB_FOLDER = Path("lab") / "notebooks"


@dataclass(frozen=True)
class LabFolder:
    path: Path
    created: bool


def lab_notebooks(root: Path | None = None) -> LabFolder:
    """The lab's working copy of ``notebooks/``: made now if missing, else left as it is."""
    target = (root or runs_root()) / LAB_FOLDER
    if target.is_dir():
        return LabFolder(target, False)
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)  # a copy killed half-way
    shutil.copytree(
        notebooks_dir(), staging, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    )
    staging.rename(target)
    return LabFolder(target, True)


def is_loopback(ip: str) -> bool:
    """Whether JupyterLab listening on ``ip`` is reachable from this machine only."""
    if ip.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(ip.strip().strip("[]")).is_loopback
    except ValueError:  # '', '*' (every interface) or a host name
        return False


def listen_warning(ip: str, port: int) -> str | None:
    """One line when ``ip`` is beyond this machine, else None."""
    if is_loopback(ip):
        return None
    return (
        f"JupyterLab listens on {ip or '*'}:{port}, beyond this machine: prefer an SSH tunnel "
        f"(ssh -L {port}:localhost:{port} HOST, and --ip 127.0.0.1), and keep the token required: "
        "whoever has it runs code as this user"
    )


def lab_ip(ip: str, extra: Sequence[str]) -> str:
    """The address JupyterLab will listen on: ``ip``, unless a passed-through option sets it."""
    for arg in extra:
        for prefix in ("--ip=", "--ServerApp.ip="):
            if arg.startswith(prefix):
                ip = arg[len(prefix) :]
    return ip


def lab_argv(
    exe: str,
    folder: Path,
    *,
    ip: str,
    port: int,
    open_browser: bool,
    extra: Sequence[str] = (),
    allow_root: bool = False,
) -> list[str]:
    """``jupyter-lab``'s command line: the working copy, the kit's kernel as the default, the
    address, and ``extra`` (any ``--Foo.bar=...``) last, so that it wins."""
    argv = [
        exe,
        f"--ServerApp.root_dir={folder}",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
    ]
    if not open_browser:
        argv.append("--no-browser")
    if allow_root:
        argv.append("--allow-root")
    return [*argv, *extra]
