"""docker-compose.yml: the kit's TimescaleDB line, the embedded server's preloads and workers, a
healthcheck for `docker compose up -d --wait`; an external server of another version is warned of."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ibcbench.db import ServerInfo
from ibcbench.infra.serverconf import conf_text
from ibcbench.infra.status import KIT_TIMESCALEDB_VERSION, timescaledb_mismatch
from ibcbench.settings import ServerSettings

ROOT = Path(__file__).resolve().parent.parent


def _service() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["timescaledb"]


def test_the_image_pins_the_kits_timescaledb_line() -> None:
    image = _service()["image"]
    major_minor = ".".join(KIT_TIMESCALEDB_VERSION.split(".")[:2])
    assert re.fullmatch(
        rf"timescale/timescaledb-ha:pg15(\.\d+)?-ts{re.escape(major_minor)}(\.\d+)?", image
    )


def test_the_server_runs_with_the_embedded_servers_workers_and_preloads(tmp_path: Path) -> None:
    command = _service()["command"]
    given = dict(c.split("=", 1) for c in command if "=" in c)
    conf = dict(
        line.split(" = ", 1)
        for line in conf_text(ServerSettings(home=tmp_path, name="x"), 5432).splitlines()
        if " = " in line
    )
    for key in (
        "shared_preload_libraries",
        "max_worker_processes",
        "timescaledb.max_background_workers",
        "cron.use_background_workers",
        "max_locks_per_transaction",
        "pg_stat_statements.track",
    ):
        assert given[key] == conf[key].strip("'"), key
    assert given["cron.database_name"] == "ibcbench"


def test_a_healthcheck_lets_compose_wait() -> None:
    check = _service()["healthcheck"]
    assert "pg_isready" in " ".join(check["test"]) and check["retries"] >= 10
    assert "docker compose up -d --wait" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    ("version", "embedded", "warned"),
    [
        (KIT_TIMESCALEDB_VERSION, False, False),
        ("2.17.2", False, True),
        (None, False, True),
        ("2.17.2", True, False),  # the embedded server runs the kit's own install
    ],
)
def test_an_external_servers_other_timescaledb_is_one_line(
    version: str | None, embedded: bool, warned: bool
) -> None:
    info = ServerInfo("15.8", 150008, "x", extensions={"timescaledb": version} if version else {})
    line = timescaledb_mismatch(info, embedded=embedded)
    assert (line is not None) is warned
    if line:
        assert "\n" not in line and KIT_TIMESCALEDB_VERSION in line
        assert (version or "no TimescaleDB") in line
