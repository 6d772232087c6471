"""The binary COPY encoder: exact bytes and a row-by-row decoder without a database, exact values
through the real server."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from data_gen import GenerationParams, generate
from data_gen.columns import ScaledInt
from data_gen.tables import FACT_TABLES, TABLES
from ibcbench.data.pgcopy import HEADER, TRAILER, encode_batch, encode_rows, encode_rows_view
from ibcbench.errors import LoadError

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


# ---- a slow, obviously correct decoder of the format, one field at a time ----------------------
def _decode_numeric(raw: bytes) -> Decimal:
    ndigits, weight, sign, dscale = struct.unpack(">hhHh", raw[:8])
    digits = struct.unpack(f">{ndigits}h", raw[8:])
    assert len(raw) == 8 + 2 * ndigits and all(0 <= d < 10_000 for d in digits)
    value = sum(Decimal(d) * Decimal(10_000) ** (weight - i) for i, d in enumerate(digits))
    value = value.quantize(Decimal(1).scaleb(-dscale)) if dscale else Decimal(int(value))
    return -value if sign == 0x4000 else value


def _decode_field(pg_type: str, raw: bytes) -> Any:
    if pg_type == "text":
        return raw.decode()
    if pg_type == "bigint":
        return struct.unpack(">q", raw)[0]
    if pg_type == "integer":
        return struct.unpack(">i", raw)[0]
    if pg_type == "double precision":
        return struct.unpack(">d", raw)[0]
    if pg_type == "timestamptz":
        return PG_EPOCH + timedelta(microseconds=struct.unpack(">q", raw)[0])
    if pg_type == "date":
        return date(2000, 1, 1) + timedelta(days=struct.unpack(">i", raw)[0])
    return _decode_numeric(raw)


def decode_rows(spec: list[tuple[str, str]], body: bytes) -> list[tuple[Any, ...]]:
    rows, pos = [], 0
    while pos < len(body):
        (count,) = struct.unpack_from(">h", body, pos)
        assert count == len(spec)
        pos += 2
        row = []
        for _, pg_type in spec:
            (length,) = struct.unpack_from(">i", body, pos)
            pos += 4
            if length == -1:
                row.append(None)
                continue
            row.append(_decode_field(pg_type, body[pos : pos + length]))
            pos += length
        rows.append(tuple(row))
    assert pos == len(body)
    return rows


def expected_rows(spec: list[tuple[str, str]], columns: dict[str, Any], n: int) -> list[tuple]:
    """The Python values the columns stand for, row by row (the contract of data_gen.tables)."""
    out: list[list[Any]] = [[] for _ in range(n)]
    for name, pg_type in spec:
        values = columns[name]
        for i in range(n):
            out[i].append(_expected_value(pg_type, values, i))
    return [tuple(r) for r in out]


def _expected_value(pg_type: str, values: Any, i: int) -> Any:
    if isinstance(values, ScaledInt):
        return Decimal(int(values.mantissa[i]) * 10 ** int(values.exponent[i]))
    if isinstance(values, pd.Categorical):
        return None if values.codes[i] < 0 else str(values.categories[values.codes[i]])
    v = values[i]
    if pg_type == "text":
        return None if v is None else str(v)
    if pg_type in ("timestamptz", "date"):
        if np.isnat(v):
            return None
        if pg_type == "date":
            return date(1970, 1, 1) + timedelta(
                days=int(v.astype("datetime64[D]").astype(np.int64))
            )
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(v.astype(np.int64)))
    if pg_type.startswith("numeric("):
        if np.isnan(v):
            return None
        scale = int(pg_type.rstrip(")").split(",")[1])
        return Decimal(int(np.round(v * 10**scale))).scaleb(-scale)
    if pg_type == "double precision":
        return None if np.isnan(v) else float(v)
    return int(v)


# ---- DB-free ----------------------------------------------------------------------------------
def test_header_and_trailer() -> None:
    assert HEADER == b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
    assert TRAILER == b"\xff\xff"
    empty = {"a": np.array([], dtype=np.int64)}
    assert encode_batch([("a", "bigint")], empty, 0) == HEADER + TRAILER
    assert encode_rows([("a", "bigint")], empty, 0) == b""


@pytest.mark.parametrize(
    ("pg_type", "values", "expected"),
    [
        ("bigint", np.array([1]), struct.pack(">hiq", 1, 8, 1)),
        ("bigint", np.array([-(2**63)]), struct.pack(">hiq", 1, 8, -(2**63))),
        ("integer", np.array([-2]), struct.pack(">hii", 1, 4, -2)),
        ("double precision", np.array([1.5]), struct.pack(">hid", 1, 8, 1.5)),
        ("double precision", np.array([np.nan]), struct.pack(">hi", 1, -1)),
        ("text", pd.Categorical.from_codes([0], ["ab"]), struct.pack(">hi", 1, 2) + b"ab"),
        ("text", pd.Categorical.from_codes([-1], ["ab"]), struct.pack(">hi", 1, -1)),
        ("text", pd.Categorical.from_codes([0], [""]), struct.pack(">hi", 1, 0)),
        ("text", np.array(["é", None], dtype=object)[:1], struct.pack(">hi", 1, 2) + "é".encode()),
        (
            "timestamptz",
            np.array(["2000-01-01T00:00:01"], dtype="datetime64[us]"),
            struct.pack(">hiq", 1, 8, 1_000_000),
        ),
        ("timestamptz", np.array(["NaT"], dtype="datetime64[us]"), struct.pack(">hi", 1, -1)),
        ("date", np.array(["2000-01-03"], dtype="datetime64[D]"), struct.pack(">hii", 1, 4, 2)),
        ("date", np.array(["1999-12-31"], dtype="datetime64[D]"), struct.pack(">hii", 1, 4, -1)),
        ("numeric(5,2)", np.array([np.nan]), struct.pack(">hi", 1, -1)),
        # 12.5 at scale 2: 125000 * 10**-4, groups 0,0,0,12,5000, the last one's weight -1
        (
            "numeric(20,2)",
            np.array([12.5]),
            struct.pack(">hihhhh5h", 1, 18, 5, 3, 0, 2, 0, 0, 0, 12, 5000),
        ),
    ],
)
def test_single_values_encode_exactly(pg_type: str, values: object, expected: bytes) -> None:
    assert encode_rows([("v", pg_type)], {"v": values}, 1) == expected


@pytest.mark.parametrize(
    ("mantissa", "exponent", "value"),
    [
        (12345, 0, 12345),
        (0, 0, 0),
        (-7, 0, -7),
        (123456789012, 12, 123456789012 * 10**12),  # 1.2e5 of an 18-decimal denom, in base units
        (9_000_000_000_000_000, 0, 9_000_000_000_000_000),
        (
            9_223_372_036_854_775,
            60,
            9_223_372_036_854_775 * 10**60,
        ),  # 78 digits: numeric(78,0)'s top
        (1, 77, 10**77),
    ],
)
def test_big_numerics_are_exact(mantissa: int, exponent: int, value: int) -> None:
    spec = [("v", "numeric(78,0)")]
    cols = {
        "v": ScaledInt(np.array([mantissa], dtype=np.int64), np.array([exponent], dtype=np.int64))
    }
    assert decode_rows(spec, encode_rows(spec, cols, 1)) == [(Decimal(value),)]


def test_numeric_layout() -> None:
    body = encode_rows(
        [("v", "numeric(78,0)")], {"v": ScaledInt(np.array([12345]), np.array([0]))}, 1
    )
    count, length, ndigits, weight, sign, dscale = struct.unpack(">hihhhh", body[:14])
    digits = struct.unpack(">5h", body[14:])
    assert (count, length, ndigits, sign, dscale) == (1, 18, 5, 0, 0)
    assert weight == 4 and digits == (0, 0, 0, 1, 2345)


def _mixed_batch(n: int, seed: int) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Every type, NULLs scattered in each nullable column, runs of fixed and of text columns."""
    rng = np.random.default_rng(seed)
    null = lambda p: rng.random(n) < p  # noqa: E731
    ts = rng.integers(0, 2**40, n).astype("datetime64[us]")
    ts[null(0.3)] = np.datetime64("NaT")
    days = rng.integers(-5000, 20000, n).astype("datetime64[D]")
    days[null(0.2)] = np.datetime64("NaT")
    floats = rng.normal(0, 1e6, n)
    floats[null(0.25)] = np.nan
    usd = np.round(rng.uniform(0, 1e9, n), 2)
    usd[null(0.4)] = np.nan
    chain = rng.integers(-1, 3, n)  # -1 is NULL
    spec = [
        ("id", "bigint"),
        ("chain", "text"),
        ("port", "text"),
        ("channel", "text"),
        ("count", "integer"),
        ("ts", "timestamptz"),
        ("d", "date"),
        ("x", "double precision"),
        ("amount", "numeric(78,0)"),
        ("usd", "numeric(20,2)"),
        ("who", "text"),
        ("rate", "numeric(5,2)"),
        ("free", "text"),
    ]
    cols = {
        "id": rng.integers(-(2**62), 2**62, n),
        "chain": pd.Categorical.from_codes(chain, ["osmosis-1", "cosmoshub-4", "ünïcode-✓"]),
        "port": pd.Categorical.from_codes(np.zeros(n, dtype=int), ["transfer"]),
        "channel": pd.Categorical.from_codes(
            np.maximum(chain, 0) * 2, [f"channel-{i}" for i in range(6)]
        ),
        "count": rng.integers(-(2**31), 2**31, n),
        "ts": ts,
        "d": days,
        "x": floats,
        "amount": ScaledInt(rng.integers(0, 10**15, n), rng.choice([0, 6, 12], n)),
        "usd": usd,
        "who": pd.Categorical.from_codes(rng.integers(0, n, n), [f"addr{i:05d}" for i in range(n)]),
        "rate": np.round(rng.uniform(0, 100, n), 2),
        "free": np.array([None if i % 7 == 0 else "x" * (i % 5) for i in range(n)], dtype=object),
    }
    return spec, cols


@pytest.mark.parametrize(("n", "seed"), [(1, 1), (17, 2), (500, 3), (3000, 4)])
def test_mixed_rows_decode_to_their_values(n: int, seed: int) -> None:
    spec, cols = _mixed_batch(n, seed)
    body = encode_rows(spec, cols, n)
    assert decode_rows(spec, body) == expected_rows(spec, cols, n)
    assert encode_rows_view(spec, cols, n) == body


@pytest.mark.parametrize(
    ("spec", "values", "message"),
    [
        ([("v", "integer")], {"v": np.array([2**40])}, "outside int32"),
        ([("v", "bigint")], {"v": np.array([1.5])}, "holds float64 values"),
        ([("v", "money")], {"v": np.array([1])}, "has no binary COPY encoder"),
        ([("v", "numeric(20,2)\n")], {"v": np.array([1.0])}, "has no binary COPY encoder"),
        (
            [("v", "numeric(78,0)")],
            {"v": ScaledInt(np.array([2**62]), np.array([0]))},
            "mantissa is too large",
        ),
        ([("v", "numeric(20,6)")], {"v": np.array([1e14])}, "beyond 9.2e15 units of its scale"),
        ([("v", "numeric(20,2)")], {"v": np.array([np.inf])}, "holds an infinite value"),
        (
            [("v", "bigint"), ("w", "bigint")],
            {"v": np.array([1]), "w": np.array([1, 2])},
            "column 'w' has 2 rows but the batch has 1",
        ),
    ],
)
def test_unencodable_values_are_refused(spec: list, values: dict, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        encode_rows(spec, values, 1)


# ---- through the server -----------------------------------------------------------------------
@pytest.mark.db
def test_round_trip_through_the_server(make_database) -> None:
    dsn = make_database("pgcopy")
    spec = [
        ("a", "bigint"),
        ("b", "integer"),
        ("c", "double precision"),
        ("d", "text"),
        ("e", "numeric(78,0)"),
        ("f", "numeric(20,2)"),
        ("g", "timestamptz"),
        ("h", "date"),
        ("i", "numeric(5,2)"),
    ]
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
    assert rows[1] == (
        1,
        7,
        1.5,
        "héllo ✓",
        Decimal("123456789012000000000000"),
        Decimal("12.50"),
        "2026-01-01 00:00:01.5+00",
        "2026-01-02",
        Decimal("100.00"),
    )
    assert rows[2][3:] == (
        "ibc/27394FB0",
        Decimal(5),
        Decimal("99999.99"),
        "1999-12-31 23:59:59+00",
        "1970-01-01",
        Decimal("3.14"),
    )


@pytest.mark.db
def test_mixed_rows_round_trip_exactly(make_database) -> None:
    spec, cols = _mixed_batch(2000, 5)
    dsn = make_database("pgcopy_mixed")
    with psycopg.connect(dsn) as conn:
        conn.execute("SET timezone = 'UTC'")
        conn.execute(
            sql.SQL("CREATE TABLE t ({})").format(
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in spec
                )  # type: ignore[arg-type]
            )
        )
        with conn.cursor().copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(encode_batch(spec, cols, 2000))
        rows = conn.execute("SELECT * FROM t").fetchall()
    assert rows == expected_rows(spec, cols, 2000)


@pytest.mark.db
@pytest.mark.parametrize("table", FACT_TABLES)
def test_generated_rows_round_trip_exactly(make_database, table: str) -> None:
    """The first 3000 rows of a tiny fact table: every value, NULL and 18-decimal amount as generated."""
    batch = next(b for b in generate(GenerationParams(seed=7, scale="tiny")) if b.table == table)
    cols = {k: v[:3000] for k, v in batch.columns.items()}
    spec = list(TABLES[table])
    dsn = make_database(f"pgcopy_{table}")
    with psycopg.connect(dsn) as conn:
        conn.execute("SET timezone = 'UTC'")
        conn.execute(
            sql.SQL("CREATE TABLE t ({})").format(
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in spec
                )  # type: ignore[arg-type]
            )
        )
        with conn.cursor().copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(encode_batch(spec, cols, 3000))
        rows = conn.execute("SELECT * FROM t ORDER BY id").fetchall()
    expected = sorted(expected_rows(spec, cols, 3000), key=lambda r: r[0])
    assert rows == expected
    assert any(v is None for r in rows for v in r)  # NULLs were part of the comparison


def test_big_batches_are_encoded_in_slices_with_the_same_bytes(monkeypatch) -> None:
    import ibcbench.data.load.producer as load

    params = GenerationParams(seed=5, scale="tiny")

    def bodies() -> tuple[dict[str, bytes], dict[str, list[int]]]:
        data: dict[str, bytearray] = {t: bytearray() for t in TABLES}
        rows: dict[str, list[int]] = {t: [] for t in TABLES}
        for item in load.encoded_batches(params):
            if isinstance(item, dict):
                continue
            data[item.table] += item.body
            rows[item.table].append(item.rows)
        return {t: bytes(b) for t, b in data.items()}, rows

    whole, whole_rows = bodies()
    monkeypatch.setattr(load, "ENCODE_ROWS", 700)
    sliced, sliced_rows = bodies()
    assert sliced == whole
    assert {t: sum(r) for t, r in sliced_rows.items()} == {t: sum(r) for t, r in whole_rows.items()}
    assert max(max(r) for r in sliced_rows.values()) <= 700
    assert len(sliced_rows["channel_performance"]) > len(whole_rows["channel_performance"]) == 1
