"""The kit's Redis beside the test cluster: start, stop, status, its files, and another OS user
without the password."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ibcbench.errors import ConfigError, ServerError
from ibcbench.infra.redis import LocalRedis, redis_status, redis_target
from ibcbench.settings import ServerSettings

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server: run scripts/install-system.sh"
)


@pytest.fixture
def redis(primary_server: object) -> LocalRedis:
    """The test cluster's Redis, running (left running for the next test)."""
    local = LocalRedis(ServerSettings())
    local.up()
    return local


def test_redis_starts_stops_and_shows_its_status(redis: LocalRedis) -> None:
    port, password = redis.port(), redis.password()
    assert redis.up() is False  # running: left alone
    status = redis_status(ServerSettings())
    assert status is not None and status.running and status.version
    assert status.line().startswith(f"redis:       127.0.0.1:{port}/0  running (redis 7")
    assert password not in status.line() and password not in redis.url(with_password=False)
    for path in (redis.conf, redis.passfile):
        assert path.stat().st_mode & 0o777 == 0o600
    assert redis.down() is True and not redis.is_running()
    stopped = redis_status(ServerSettings())
    assert stopped is not None and "NOT RUNNING" in stopped.line()
    with pytest.raises(ServerError, match=r"Redis is not running in .*`ibcbench db up --redis`"):
        redis_target()
    assert redis.down() is False
    assert redis.up() is True
    assert (redis.port(), redis.password()) == (port, password)  # the same port and password


def test_another_os_user_cannot_use_it_without_the_password(redis: LocalRedis) -> None:
    port = str(redis.port())
    ping = subprocess.run(
        ["runuser", "-u", "nobody", "--", "redis-cli", "-h", "127.0.0.1", "-p", port, "PING"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert "NOAUTH" in ping.stdout + ping.stderr
    for path in (redis.passfile, redis.conf):
        read = subprocess.run(
            ["runuser", "-u", "nobody", "--", "cat", str(path)], capture_output=True, text=True
        )
        assert read.returncode != 0 and "Permission denied" in read.stderr
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening


def test_redis_url_must_be_a_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "http://example.invalid:1/0")
    with pytest.raises(ConfigError, match="is not a redis:// URL: fix REDIS_URL"):
        redis_target()
