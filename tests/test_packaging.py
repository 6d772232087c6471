"""The package as a user installs it: a wheel built from this checkout, installed into a fresh
virtualenv outside it, run from a folder outside it.

The wheel is built from a copy of the sources (so no ``build/`` or ``*.egg-info`` lands in the
checkout, and no stale ``build/lib`` of an earlier build slips into the wheel). The virtualenv has
no pip and downloads nothing: the wheel goes in with ``--no-deps`` and a ``.pth`` file puts this
interpreter's site-packages after it for the dependencies. A ``.pth`` path line does not run the
``.pth`` files of the folder it names, so the checkout's editable install stays out of sight.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
#: what a build reads: the project file, the packages and the top-level folders they link to
SOURCES = (
    "pyproject.toml",
    "README.md",
    "MANIFEST.in",
    "setup.py",
    "ibcbench",
    "data_gen",
    "schema",
    "notebooks",
)
#: variables that would point the installed package at the checkout or at another runs folder
HIDDEN_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "IBCBENCH_RUNS_DIR")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    python: Path
    work: Path  # a folder outside the checkout: the commands' working directory
    env: dict[str, str]

    def run(self, *argv: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(self.venv / "bin" / "ibcbench", *args, timeout=timeout)


def _check(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (
        f"{proc.args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


def _builds_offline() -> bool:
    """Whether this interpreter has the build backend [build-system] asks for, with bdist_wheel:
    then the wheel builds without build isolation (no download)."""
    import setuptools

    version = tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())
    return version >= (70, 1) or (
        version >= (68, 0) and importlib.util.find_spec("wheel") is not None
    )


def _copy_sources(dest: Path) -> None:
    dest.mkdir()
    skip = shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", "runs", ".ipynb_checkpoints"
    )
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, symlinks=True, ignore=skip)
        elif source.is_file():
            shutil.copy2(source, dest / name)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HIDDEN_ENV}
    env.update(extra)
    return env


def _call(*argv: str | Path, timeout: float = 300) -> str:
    """Run a build step with the checkout out of sight; its stdout."""
    proc = subprocess.run(
        [str(a) for a in argv], env=_clean_env(), capture_output=True, text=True, timeout=timeout
    )
    return _check(proc).stdout


def _build_wheel(base: Path) -> Path:
    _copy_sources(base / "src")
    isolation = ["--no-build-isolation"] if _builds_offline() else []
    pip = (sys.executable, "-m", "pip")
    _call(*pip, "wheel", "--no-deps", *isolation, "-w", base / "dist", base / "src")
    (wheel,) = (base / "dist").glob("ibcbench-*.whl")
    return wheel


def _make_venv(venv: Path, wheel: Path) -> Path:
    """A virtualenv without pip holding ``wheel``, the dependencies taken from this interpreter."""
    _call(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _call(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel
    )
    site = _call(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    deps = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    Path(site, "ibcbench_test_dependencies.pth").write_text("".join(f"{p}\n" for p in deps))
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("packaging")
    assert not base.resolve().is_relative_to(ROOT), "needs a temporary folder outside the checkout"
    # the virtualenv inside some other repository (as a project's .venv often is): the package
    # must not take that repository's commit for its own
    git = ("git", "-C", base, "-c", "user.name=t", "-c", "user.email=t@localhost")
    _call(*git, "init", "-q")
    _call(*git, "commit", "-q", "--allow-empty", "-m", "another project")
    wheel = _build_wheel(base)
    venv = base / "venv"
    python = _make_venv(venv, wheel)
    work = base / "work"
    work.mkdir()
    env = _clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("DATABASE_URL", None)
    yield Installed(wheel, venv, python, work, env)


def test_the_wheel_carries_the_migrations_notebooks_and_templates(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for folder, pattern in (("schema/migrations", "*.sql"), ("notebooks", "*.ipynb")):
        files = {p.name for p in (ROOT / folder).glob(pattern)}
        assert files
        packaged = {
            n.rsplit("/", 1)[1]
            for n in names
            if n.startswith(f"ibcbench/_resources/{Path(folder).name}/")
        }
        assert packaged == files, folder
    assert "ibcbench/suite/templates/report.html.j2" in names


def test_the_installed_package_reads_its_own_files(installed: Installed) -> None:
    probe = (
        "import ibcbench, json\n"
        "from ibcbench.infra.migrate import default_migrations_dir, load_migrations\n"
        "from ibcbench.suite.parameters import notebooks_dir, notebook_path\n"
        "from ibcbench.results.runs import _git_commit\n"
        "print(json.dumps({'package': ibcbench.__file__, 'migrations': str(default_migrations_dir()),"
        " 'count': len(load_migrations()), 'notebooks': str(notebooks_dir()),"
        " 'nb04': str(notebook_path('04_query_plans.ipynb')), 'commit': _git_commit()}))\n"
    )
    found = json.loads(_check(installed.run(installed.python, "-c", probe)).stdout)
    venv = installed.venv.resolve()
    for key in ("package", "migrations", "notebooks", "nb04"):
        path = Path(found[key]).resolve()
        assert path.is_relative_to(venv), (key, path)
        assert not path.is_relative_to(ROOT), (key, path)
    assert found["count"] == len(list((ROOT / "schema" / "migrations").glob("*.up.sql")))
    assert found["commit"] is None  # an installed package is no checkout


def test_the_cli_help_runs_from_the_wheel(installed: Installed) -> None:
    out = _check(installed.run(installed.python, "-m", "ibcbench.cli", "--help")).stdout
    assert "schema" in out and "run" in out
    assert "schema" in _check(installed.cli("--help")).stdout


@pytest.mark.db
@pytest.mark.notebook
def test_schema_up_and_a_notebook_run_from_the_wheel(installed: Installed, server_dsn: str) -> None:
    name = f"t_packaging_{os.getpid()}"
    dsn = create_database(server_dsn, name)
    try:
        _check(installed.cli("schema", "up", "--dsn", dsn))
        latest = max(int(p.name[:6]) for p in (ROOT / "schema" / "migrations").glob("*.up.sql"))
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT version, dirty FROM schema_migrations").fetchone() == (
                latest,
                False,
            )
    finally:
        drop_database(server_dsn, name)
    proc = _check(
        installed.cli(
            "run", "04_query_plans.ipynb", "--dsn", server_dsn, "-p", "scale", "tiny", timeout=300
        )
    )
    folder = next(
        line.split(": ", 1)[1]
        for line in proc.stdout.splitlines()
        if line.startswith("run folder: ")
    )
    run = Path(folder).resolve()
    assert run.parent == (installed.work / "runs").resolve()
    assert (run / "04_query_plans.ipynb").is_file()
