"""Connection strings: what they say without their password, and the same server's other database.

One home for what the kit does to a DSN (URL or key=value form): ``redact_dsn`` for any text that
may hold one (messages, manifests, notebooks, reports), ``describe_dsn`` for a manifest,
``with_database`` to point one at another database of its server, ``with_params`` for any other
change, all through psycopg's conninfo parser and builder, never by string surgery.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ibcbench.errors import ConfigError

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


def describe_dsn(dsn: str) -> str:
    """The DSN without its password, for messages and manifests. What it leaves out is what libpq
    takes from its variables (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGDATABASE``), as it connects:
    an empty DSN names the server those variables name. (A service file's entries are known only
    after connecting: describe ``conn.info.dsn`` then.)"""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    defaults = _libpq_defaults()
    user = parts.get("user") or defaults.get("user") or ""
    host = parts.get("host") or defaults.get("host") or "localhost"
    port = parts.get("port") or defaults.get("port") or "5432"
    dbname = parts.get("dbname") or defaults.get("dbname") or user
    return f"{user}@{host}:{port}/{dbname}"


def _libpq_defaults() -> dict[str, str]:
    """libpq's defaults for the keys :func:`describe_dsn` shows, its variables included."""
    keys = ("user", "host", "port", "dbname")
    out: dict[str, str] = {}
    for option in psycopg.pq.Conninfo.get_defaults():
        key = option.keyword.decode()
        if key in keys and option.val:
            out[key] = option.val.decode()
    return out


def with_params(dsn: str, **changes: Any) -> str:
    """``dsn`` with ``changes`` applied (a value of None removes that key), as a key=value string;
    an unparseable DSN is one line without its password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"invalid DSN {redact_dsn(dsn, dsn=dsn)!r}: {redact_dsn(str(exc).strip(), dsn=dsn)}; "
            "fix DATABASE_URL or --dsn"
        ) from exc
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return make_conninfo("", **params)


def with_database(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at another database of the same server."""
    return with_params(dsn, dbname=dbname)
