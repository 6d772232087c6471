"""Redis beside the embedded server: its config, password, start, stop and status.

``ibcbench db up --redis`` starts Debian's ``redis-server`` for the cluster, as the server's OS user
(the unprivileged ``ibcbench`` when the kit runs as root), on a free port of 127.0.0.1 only, with a
password (``requirepass``). Everything lives in ``<cluster_dir>/redis``: ``redis.conf`` (it holds
the password: mode 0600, the server user's), ``redis.pass`` (the password for the kit's clients:
mode 0600, the user who runs the kit's, like the server's ``pgpass``), ``redis.json`` (the port),
the pidfile and the log. It is a cache: no snapshots, no append-only file, ``maxmemory`` with LRU
eviction. ``db down`` stops it; ``db status`` shows it.

An external Redis is given by ``REDIS_URL`` (``redis://:password@host:port/0``); :func:`redis_target`
resolves the URL the kit's clients use as :func:`ibcbench.db.resolve_dsn` does for PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ibcbench.errors import ConfigError, ServerError
from ibcbench.infra import serverauth
from ibcbench.infra.serveruser import run_as, server_user
from ibcbench.settings import ServerSettings

#: Redis's port is searched from the primary's default port + this
REDIS_FIRST_PORT = 56379
MAXMEMORY_MB = 256


def find_redis_server() -> str:
    """Debian's redis-server (in /usr/bin)."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise ServerError(
            "redis-server not found: run scripts/install-system.sh as root (it installs redis-server)"
        )
    return found


def _free_port(start: int) -> int:
    for port in range(start, start + 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServerError(f"no free port for Redis in {start}-{start + 199}")


def redis_url(host: str, port: int, password: str | None = None) -> str:
    """``redis://host:port/0``, with the password when given (a secret: never print it)."""
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"


def describe_redis_url(url: str) -> str:
    """``host:port/db`` of a Redis URL, without its password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


@dataclass(frozen=True)
class RedisStatus:
    """What ``db status`` shows of Redis: where, whether it answers, and its figures."""

    target: str  # host:port/db, no password
    running: bool
    embedded: bool
    version: str | None = None
    used_memory: str | None = None
    keys: int | None = None
    detail: str = ""

    def line(self) -> str:
        head = f"{'redis:':<13}{self.target}  {'running' if self.running else 'NOT RUNNING'}"
        bits = [b for b in (self.version and f"redis {self.version}", self.detail) if b]
        if self.used_memory is not None:
            bits.append(f"used_memory {self.used_memory}, {self.keys} keys")
        return head + (f" ({'; '.join(bits)})" if bits else "")


class LocalRedis:
    """The embedded cluster's Redis: ``up()``, ``down()``, ``status()``. Safe to call again."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.settings = settings or ServerSettings()
        self.dir = self.settings.cluster_dir / "redis"
        self.conf = self.dir / "redis.conf"
        self.passfile = self.dir / "redis.pass"
        self.state_file = self.dir / "redis.json"
        self.pidfile = self.dir / "redis.pid"
        self.logfile = self.dir / "redis.log"

    # ---- records -------------------------------------------------------------------------------
    def port(self) -> int | None:
        try:
            return int(json.loads(self.state_file.read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def password(self) -> str | None:
        try:
            return self.passfile.read_text().strip() or None
        except FileNotFoundError:
            return None

    def url(self, *, with_password: bool = True) -> str:
        """The embedded Redis's URL (refuses one that is not running)."""
        port = self.port()
        if port is None or not self.is_running():
            raise ServerError(
                f"Redis is not running in {self.settings.name!r}: run `ibcbench db up --redis`"
            )
        return redis_url("127.0.0.1", port, self.password() if with_password else None)

    def pid(self) -> int | None:
        """The PID of this Redis: the pidfile's, when that process is redis-server with this
        config (its title names the config file); else None."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return pid if "redis-server" in title and str(self.conf) in title else None

    def is_running(self) -> bool:
        return self.pid() is not None

    # ---- lifecycle -----------------------------------------------------------------------------
    def _config(self, port: int, password: str) -> str:
        return (
            "# written by `ibcbench db up --redis` on every start (ibcbench.infra.redis)\n"
            "bind 127.0.0.1\n"
            "protected-mode yes\n"
            f"port {port}\n"
            f'requirepass "{password}"\n'
            "daemonize yes\n"
            'proc-title-template "{title} {listen-addr} {config-file}"\n'
            f"pidfile {self.pidfile}\n"
            f"logfile {self.logfile}\n"
            f"dir {self.dir}\n"
            'save ""\n'
            "appendonly no\n"
            f"maxmemory {MAXMEMORY_MB}mb\n"
            "maxmemory-policy allkeys-lru\n"
        )

    def _user(self) -> Any:
        return server_user(self.settings) if os.geteuid() == 0 else None

    def up(self) -> bool:
        """Start Redis unless it runs; returns whether it was started. The password is made once
        and kept; the port is the recorded one while it is free."""
        if self.is_running():
            return False
        exe = find_redis_server()
        if not self.settings.cluster_dir.exists():
            raise ServerError(
                f"no cluster {self.settings.name!r} to start Redis beside: run `ibcbench db up`"
            )
        user = self._user()
        owner = (user.pw_uid, user.pw_gid) if user is not None else None
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if owner is not None:
            os.chown(self.dir, *owner)
        password = self.password()
        if password is None:
            password = serverauth.new_password()
            serverauth.write_private(self.passfile, password + "\n")
        recorded = self.port()
        port = recorded if recorded and _port_free(recorded) else _free_port(REDIS_FIRST_PORT)
        serverauth.write_private(self.state_file, json.dumps({"port": port}) + "\n")
        serverauth.write_private(self.conf, self._config(port, password), owner)
        self.pidfile.unlink(missing_ok=True)  # not running (checked above): stale
        run_as(self.settings, [exe, str(self.conf)], user, timeout=30)
        self._wait_ready(port, password)
        return True

    def _wait_ready(self, port: int, password: str) -> None:
        deadline = time.monotonic() + 15
        last = ""
        while time.monotonic() < deadline:
            if self.is_running():
                try:
                    if _ping(port, password):
                        return
                except OSError as exc:
                    last = str(exc)
            time.sleep(0.05)
        raise ServerError(
            f"Redis did not answer on 127.0.0.1:{port} within 15 s{f' ({last})' if last else ''}: "
            f"see {self.logfile}"
        )

    def down(self) -> bool:
        """Stop this Redis (SIGTERM to the verified PID, SIGKILL after 10 s); whether it ran."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 10):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        self.pidfile.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL this Redis at once (the fault suite's Redis going away); whether it ran."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5)
        return True

    def configured(self) -> bool:
        return self.state_file.exists()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return False


def _resp(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for w in words:
        data = w.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _ping(port: int, password: str) -> bool:
    """AUTH and PING over a raw socket (no client library in this layer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(_resp("AUTH", password) + _resp("PING"))
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.startswith(b"+OK\r\n+PONG")


def redis_target(url: str | None = None, settings: ServerSettings | None = None) -> str:
    """The Redis URL the kit's clients use: ``url``, else ``REDIS_URL``, else the embedded one
    (with its password); none running: one line saying how to start one."""
    chosen = url or os.environ.get("REDIS_URL")
    if chosen:
        if not chosen.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"REDIS_URL {describe_redis_url(chosen)!r} is not a redis:// URL: fix REDIS_URL"
            )
        return chosen
    return LocalRedis(settings).url()


def redis_status(settings: ServerSettings | None = None) -> RedisStatus | None:
    """The Redis of ``REDIS_URL``, else the embedded one when it was ever started (None: no Redis
    to show)."""
    external = os.environ.get("REDIS_URL")
    local = LocalRedis(settings)
    if not external and not local.configured():
        return None
    if external:
        target, embedded = external, False
    else:
        port = local.port()
        if port is None or not local.is_running():
            where = f"127.0.0.1:{port}/0" if port else "127.0.0.1"
            return RedisStatus(where, False, True, detail="start it: `ibcbench db up --redis`")
        target, embedded = redis_url("127.0.0.1", port, local.password()), True
    return _query_status(target, embedded)


def _query_status(url: str, embedded: bool) -> RedisStatus:
    where = describe_redis_url(url)
    try:
        import redis as redis_client
    except ImportError:
        return RedisStatus(where, embedded, embedded, detail="the redis Python client is missing")
    try:
        client = redis_client.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        info = client.info()
        keys = int(client.dbsize())
    except redis_client.RedisError as exc:
        return RedisStatus(where, False, embedded, detail=str(exc).splitlines()[0])
    return RedisStatus(
        where,
        True,
        embedded,
        version=str(info.get("redis_version")),
        used_memory=str(info.get("used_memory_human")),
        keys=keys,
        detail="" if embedded else "REDIS_URL",
    )
