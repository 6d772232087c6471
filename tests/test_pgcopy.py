"""The binary COPY encoder: exact bytes without a database, exact values through the real server."""

from __future__ import annotations

import struct
from decimal import Decimal

import numpy as np
import pandas as pd
import psycopg
import pytest

from data_gen.columns import ScaledInt
from ibcbench.errors import LoadError
from ibcbench.pgcopy import HEADER, TRAILER, encode_batch, encode_rows


def test_header_and_trailer() -> None:
    assert HEADER == b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
    assert (
        encode_batch([("a", "bigint")], {"a": np.array([], dtype=np.int64)}, 0) == HEADER + TRAILER
    )


@pytest.mark.parametrize(
    ("pg_type", "values", "expected"),
    [
        ("bigint", np.array([1]), struct.pack(">hiq", 1, 8, 1)),
        ("integer", np.array([-2]), struct.pack(">hii", 1, 4, -2)),
        ("double precision", np.array([1.5]), struct.pack(">hid", 1, 8, 1.5)),
        ("double precision", np.array([np.nan]), struct.pack(">hi", 1, -1)),
        ("text", pd.Categorical.from_codes([0], ["ab"]), struct.pack(">hi", 1, 2) + b"ab"),
        ("text", pd.Categorical.from_codes([-1], ["ab"]), struct.pack(">hi", 1, -1)),
        (
            "timestamptz",
            np.array(["2000-01-01T00:00:01"], dtype="datetime64[us]"),
            struct.pack(">hiq", 1, 8, 1_000_000),
        ),
        ("timestamptz", np.array(["NaT"], dtype="datetime64[us]"), struct.pack(">hi", 1, -1)),
        ("date", np.array(["2000-01-03"], dtype="datetime64[D]"), struct.pack(">hii", 1, 4, 2)),
    ],
)
def test_single_values_encode_exactly(pg_type: str, values: object, expected: bytes) -> None:
    assert encode_rows([("v", pg_type)], {"v": values}, 1) == expected


def test_numeric_layout() -> None:
    body = encode_rows(
        [("v", "numeric(78,0)")], {"v": ScaledInt(np.array([12345]), np.array([0]))}, 1
    )
    count, length, ndigits, weight, sign, dscale = struct.unpack(">hihhhh", body[:14])
    digits = struct.unpack(">6h", body[14:])
    assert (count, length, ndigits, sign, dscale) == (1, 20, 6, 0, 0)
    assert weight == 5 and digits == (0, 0, 0, 0, 1, 2345)


@pytest.mark.parametrize(
    ("pg_type", "values", "message"),
    [
        ("integer", np.array([2**40]), "outside int32"),
        ("money", np.array([1]), "has no binary COPY encoder"),
        ("numeric(78,0)", ScaledInt(np.array([2**62]), np.array([0])), "mantissa is too large"),
    ],
)
def test_unencodable_values_are_refused(pg_type: str, values: object, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        encode_rows([("v", pg_type)], {"v": values}, 1)


@pytest.mark.db
def test_round_trip_through_the_server(make_database) -> None:
    dsn = make_database("pgcopy")
    spec = [("a", "bigint"), ("b", "integer"), ("c", "double precision"), ("d", "text"), ("e", "numeric(78,0)"),
            ("f", "numeric(20,2)"), ("g", "timestamptz"), ("h", "date"), ("i", "numeric(5,2)")]  # fmt: skip
    cols = {
        "a": np.array([1, -2, 3]),
        "b": np.array([7, 8, -9]),
        "c": np.array([1.5, np.nan, -2.25]),
        "d": pd.Categorical.from_codes([0, -1, 1], categories=["héllo ✓", "ibc/27394FB0"]),
        "e": ScaledInt(
            np.array([123456789012, 0, 5], dtype=np.int64), np.array([12, 0, 0], dtype=np.int64)
        ),
        "f": np.array([12.5, np.nan, 99999.99]),
        "g": np.array(
            ["2026-01-01T00:00:01.5", "NaT", "1999-12-31T23:59:59"], dtype="datetime64[us]"
        ),
        "h": np.array(["2026-01-02", "NaT", "1970-01-01"], dtype="datetime64[D]"),
        "i": np.array([100.0, 0.0, 3.14159]),
    }
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE t (" + ", ".join(f"{n} {t}" for n, t in spec) + ")")  # type: ignore[arg-type]
        with conn.cursor().copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(encode_batch(spec, cols, 3))
        rows = conn.execute(
            "SELECT a, b, c, d, e, f, g::text, h::text, i FROM t ORDER BY a"
        ).fetchall()
    assert rows[0] == (-2, 8, None, None, Decimal(0), None, None, None, Decimal("0.00"))
    assert rows[1] == (1, 7, 1.5, "héllo ✓", Decimal("123456789012000000000000"), Decimal("12.50"),
                       "2026-01-01 00:00:01.5+00", "2026-01-02", Decimal("100.00"))  # fmt: skip
    assert rows[2][3:] == ("ibc/27394FB0", Decimal(5), Decimal("99999.99"), "1999-12-31 23:59:59+00", "1970-01-01",
                           Decimal("3.14"))  # fmt: skip
