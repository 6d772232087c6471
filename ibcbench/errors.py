"""The kit's exceptions.

Every message is one line that names the object and says what to do next; the CLI prints it as is
and exits non-zero. The library never calls ``sys.exit``.
"""

from __future__ import annotations

import errno


def first_line(exc: BaseException, default: str | None = None) -> str:
    """The first line of ``exc``'s message, for a one-line error; ``default`` (else the exception's
    class name) when the message is empty."""
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return type(exc).__name__ if default is None else default


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


def write_failure(exc: OSError, path: object) -> str:
    """What an OSError writing under ``path`` means, in the words of a one-line message.

    ``no space left on PATH``, ``permission denied writing PATH``, ...; the caller adds what was
    written and what to do next."""
    reasons = {
        errno.ENOSPC: "no space left on {}",
        errno.EDQUOT: "the disk quota is exceeded on {}",
        errno.EFBIG: "a file in {} reached the file size limit (ulimit -f)",
        errno.EACCES: "permission denied writing {}",
        errno.EPERM: "permission denied writing {}",
        errno.EROFS: "{} is on a read-only filesystem",
    }
    reason = reasons.get(exc.errno or 0)
    if reason is None:
        return f"cannot write {path}: {exc.strerror or exc}"
    return reason.format(path)


def write_advice(exc: OSError) -> str:
    """What to do about an OSError writing a folder: ``free space``, ``raise the limit``, ..."""
    if exc.errno == errno.EFBIG:
        return "raise the limit"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make it writable"
    return "free space"


#: errno values that mean the filesystem is full (or a limit on it was reached)
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
