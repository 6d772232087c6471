"""Redaction of DSN passwords (pure: no database), and a bad DSN's one-line error from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ibcbench.dsn import dsn_passwords, redact_dsn

#: (text, the DSN it speaks of or None, what must not appear)
CASES = [
    ("postgresql://u:pw-s3cr3t@h:5432/db", None, ["pw-s3cr3t"]),
    ("host=h password=pw-s3cr3t user=u", None, ["pw-s3cr3t"]),
    ("host=h password=Se cretTail user=u", None, ["Se", "cretTail"]),
    ("host=h user=u password=Se cretTail", None, ["cretTail"]),
    ('host=h password="DqPw 5" port=1', None, ["DqPw", '5"']),
    ("host=h password='Dq\\' Pw 7' port=1", None, ["Dq", "Pw 7"]),
    ("host=h password = 'unterminated Pw", None, ["unterminated", "Pw"]),
    ("postgresql://u:Sec ret@h:5432/db", None, ["Sec", "ret@"]),
    ("postgresql://u:p@ss w0rd@h/db", None, ["p@ss", "w0rd"]),
    ("postgresql://u@h/db?password=Qs%20pw&sslmode=disable", None, ["Qs%20pw"]),
    ("PASSWORD=UpperCasePw host=h", None, ["UpperCasePw"]),
    # a driver's own words echo the password, or a piece of it
    (
        'unexpected spaces found in "Sec ret", use percent-encoded spaces (%20) instead',
        "postgresql://u:Sec ret@h/db",
        ["Sec ret", "Sec", 'ret"'],
    ),
    (
        'missing "=" after "cretTail" in connection info string',
        "host=h port=1 password=Se cretTail user=u",
        ["cretTail"],
    ),
    ('missing "=" after "5"" in connection info string', 'password="DqPw 5"', ['"5"']),
    ("the password Plain%20Pw decoded is Plain Pw", "postgresql://u:Plain%20Pw@h/db", ["Plain"]),
]


@pytest.mark.parametrize(("text", "dsn", "hidden"), CASES)
def test_redaction_hides_every_piece_of_the_password(
    text: str, dsn: str | None, hidden: list[str]
) -> None:
    out = redact_dsn(text, dsn=dsn)
    assert "***" in out, out
    for secret in hidden:
        assert secret not in out, out


@pytest.mark.parametrize(
    ("text", "dsn", "kept"),
    [
        ("postgresql://u:pw@h:5432/db", None, "postgresql://u:***@h:5432/db"),
        ("host=h password=pw user=u dbname=d", None, "host=h password=*** user=u dbname=d"),
        ("host=h password='a b' port=1", None, "host=h password=*** port=1"),
        ("postgresql://u@h:5432/db", None, "postgresql://u@h:5432/db"),  # no password: unchanged
        ('password authentication failed for user "u"', "postgresql://u:uu@h/d", 'user "u"'),
        ("connection to 127.0.0.1 port 1 failed", "postgresql://u:pw-1@127.0.0.1:1/d", "port 1"),
    ],
)
def test_redaction_keeps_what_is_not_the_password(text: str, dsn: str | None, kept: str) -> None:
    assert kept in redact_dsn(text, dsn=dsn)


@pytest.mark.parametrize(
    ("dsn", "password"),
    [
        ("host=h password=Se cretTail user=u", "Se cretTail"),
        ("host=h password='Dq\\' Pw'", "Dq' Pw"),
        ('password="DqPw 5" port=1', "DqPw 5"),
        ("postgresql://u:p@ss w0rd@h/db", "p@ss w0rd"),
        ("postgresql://u:a%40b@h/db", "a@b"),
    ],
)
def test_the_password_of_a_malformed_dsn_is_found(dsn: str, password: str) -> None:
    assert password in dsn_passwords(dsn)


def test_a_dsn_without_a_password_names_none() -> None:
    assert dsn_passwords("host=h user=u dbname=d") == []
    assert dsn_passwords("postgresql://u@h/d") == []


@pytest.mark.parametrize(
    ("dsn", "secrets"),
    [
        ("host=127.0.0.1 port=1 password=Se cretTail user=u", ["Se cret", "cretTail"]),
        ("postgresql://u:Sec ret@127.0.0.1:1/x", ["Sec ret", "Sec", "ret@"]),
        ('host=127.0.0.1 password="DqPw 5" port=1', ["DqPw", '5"']),
        ("postgresql://u:p@ss w0rd@127.0.0.1:1/x", ["p@ss", "w0rd", '"ss']),
    ],
)
def test_a_malformed_dsn_is_one_line_without_its_password(dsn: str, secrets: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "ibcbench.cli", "schema", "version", "--dsn", dsn],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "DSN" in lines[0] and "--dsn" in lines[0]
    for secret in secrets:
        assert secret not in proc.stderr + proc.stdout, lines[0]


@pytest.mark.parametrize(
    ("dsn", "changes", "expected"),
    [
        ("postgresql://u@h:5/a", {"dbname": "b"}, "user=u dbname=b host=h port=5"),
        (
            "host=/run/x port=5 dbname=a passfile=/p",
            {"dbname": "b"},
            "host=/run/x port=5 dbname=b passfile=/p",
        ),
        ("host=h dbname=a passfile=/p", {"passfile": None}, "host=h dbname=a"),
    ],
)
def test_with_params_rewrites_through_the_conninfo_parser(dsn, changes, expected) -> None:
    from psycopg.conninfo import conninfo_to_dict

    from ibcbench.dsn import with_params

    assert conninfo_to_dict(with_params(dsn, **changes)) == conninfo_to_dict(expected)


def test_an_unparseable_dsn_is_one_line_without_its_password() -> None:
    from ibcbench.dsn import with_database
    from ibcbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^invalid DSN .*fix DATABASE_URL or --dsn$") as info:
        with_database("host=h password=Se cretTail", "b")
    assert "cretTail" not in str(info.value) and "Se " not in str(info.value)
