"""The kit's exceptions.

Every message is one line that names the object and says what to do next; the CLI prints it as is
and exits non-zero. The library never calls ``sys.exit``.
"""

from __future__ import annotations

import re

_URL_PASSWORD_RE = re.compile(r"(://[^:/@\s]*:)\S*@")
_KEY_PASSWORD_RE = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


def redact_dsn(text: str) -> str:
    """``text`` with the password of any DSN in it (URL or key=value form) replaced by ``***``."""
    return _KEY_PASSWORD_RE.sub(r"\1***", _URL_PASSWORD_RE.sub(r"\1***@", text))


class IbcbenchError(Exception):
    """Base class of every error the kit raises on purpose."""


class ConfigError(IbcbenchError):
    """A setting, argument or parameter is invalid; raised before any work is done."""


class ServerError(IbcbenchError):
    """The embedded PostgreSQL server cannot be set up, started or reached."""


class ConnectionFailed(IbcbenchError):
    """The database named by the DSN cannot be reached."""


class MissingExtension(IbcbenchError):
    """An extension the kit needs is not installed on the server."""


class MigrationError(IbcbenchError):
    """A schema migration failed or cannot be applied."""


class DirtyDatabase(MigrationError):
    """A previous migration failed half-way; the schema version is marked dirty."""


class LoadError(IbcbenchError):
    """Data cannot be loaded without duplicating or losing rows."""


class BenchmarkError(IbcbenchError):
    """A benchmark or workload cannot run as asked."""


class PlanError(IbcbenchError):
    """A query plan cannot be captured, parsed or compared."""


class RunError(IbcbenchError):
    """A run folder, notebook run or report cannot be found or built."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a command; the message says what was kept (the CLI exits 130 with it)."""
