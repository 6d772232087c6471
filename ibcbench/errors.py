"""The kit's exceptions.

Every message is one line that names the object and says what to do next; the CLI prints it as is
and exits non-zero. The library never calls ``sys.exit``.
"""

from __future__ import annotations

import errno
import re

#: a URL's password: after ``scheme://user:``, up to the last ``@`` of the line (a malformed one may
#: hold spaces or an ``@``)
_URL_PASSWORD_RE = re.compile(r"(://[^:/@\s]*:).*@")
#: the next ``key=`` of a key=value DSN (or ``&key=`` of a URL's query): where an unquoted value ends
_NEXT_KEY = r"(?=\s+[A-Za-z_]\w*\s*=|&[A-Za-z_]\w*=|$)"
_KEY_PASSWORD_RE = re.compile(
    r"(password\s*=\s*)("
    r"'(?:[^'\\]|\\.)*(?:'|$)"  # libpq's quoting, backslash escapes (unterminated: to the end)
    r'|"[^"]*(?:"|$)'  # double quotes, which libpq does not know but a user may write
    r"|.*?" + _NEXT_KEY + r")",  # unquoted, spaces and all, up to the next key= or the end
    re.IGNORECASE | re.MULTILINE,
)
#: a token quoted by libpq's messages (``missing "=" after "cretTail"``)
_QUOTED_RE = re.compile(r'"([^"]+)"')
#: the shortest piece of a password removed wherever it appears (shorter ones only as quoted tokens)
_MIN_PIECE = 4


def dsn_passwords(dsn: str) -> list[str]:
    """The password of ``dsn`` as written, however malformed the DSN, with the forms a message may
    show it in (unquoted, percent-decoded); empty when it names none."""
    from urllib.parse import unquote

    found: list[str] = []
    for match in _KEY_PASSWORD_RE.finditer(dsn):
        value = match.group(2).strip()
        if value[:1] in "'\"":
            value = value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
            found += [value, value.replace("\\'", "'").replace("\\\\", "\\")]
        else:
            found.append(value)
    url = re.search(r"://[^:/@\s]*:(.*)@", dsn)
    if url:
        found.append(url.group(1))
    found += [unquote(v) for v in found]
    return sorted({v for v in found if v}, key=len, reverse=True)


def redact_dsn(text: str, dsn: str | None = None) -> str:
    """``text`` with the password of any DSN in it (URL or key=value form) replaced by ``***``.

    Quoted values (``'...'`` with backslash escapes, ``"..."``), unquoted ones with spaces (up to the
    next ``key=``) and URL passwords up to the last ``@`` are covered. ``dsn``: the DSN ``text`` speaks
    of (a driver's message may echo its password, or a piece of it, in words of its own): that
    password is removed wherever it appears, and so is each word of it at least four characters
    long, and each quoted token of the text that holds a piece of it."""
    out = _KEY_PASSWORD_RE.sub(r"\1***", _URL_PASSWORD_RE.sub(r"\1***@", text))
    if not dsn:
        return out
    secrets = dsn_passwords(dsn)
    for secret in secrets:
        out = out.replace(secret, "***")
    pieces = {p for s in secrets for p in re.split(r"[\s'\"]+", s) if p}
    for piece in sorted(pieces, key=len, reverse=True):
        if len(piece) >= _MIN_PIECE:
            out = out.replace(piece, "***")

    names = set(
        re.findall(r"(?:\buser\s*=\s*|://)([^\s:/@']+)", dsn)
    )  # the user's name is no secret

    def shows_secret(token: str) -> bool:
        if token in names:
            return False
        parts = [token, *(p for p in re.split(r"[\s@/:]+", token) if len(p) > 1)]
        return any(part in secret for part in parts for secret in secrets)

    return _QUOTED_RE.sub(lambda m: '"***"' if shows_secret(m.group(1)) else m.group(0), out)


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
