"""PostgreSQL's binary COPY format, encoded from column arrays with numpy (no loop per row).

Each column becomes a 2-D byte array (rows x its widest field, the int32 length prefix included) and
a mask of the bytes each row really uses; the columns are stacked side by side and ``full[mask]``
reads them out row-major: exactly the COPY body. Text comes from pandas Categoricals (each category
is encoded once), numerics from :class:`data_gen.columns.ScaledInt` or float64, timestamps from
``datetime64[us]``.

Format: https://www.postgresql.org/docs/current/sql-copy.html (Binary Format).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from data_gen.columns import ScaledInt
from ibcbench.errors import LoadError

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970-01-01
PG_EPOCH_DAYS = 10_957
_NUMERIC_GROUPS = (
    6  # base-10000 digits per value: int64 mantissas need at most 5, plus one of shift
)
_NUMERIC_RE = re.compile(r"^numeric\((\d+),\s*(\d+)\)$")
_NULL_LEN = np.frombuffer(np.array([-1], dtype=">i4").tobytes(), dtype=np.uint8)


def _with_length(data: np.ndarray, length: int) -> np.ndarray:
    """Prefix every row of fixed-width ``data`` (rows x length) with the int32 length."""
    prefix = np.frombuffer(np.array([length], dtype=">i4").tobytes(), dtype=np.uint8)
    return np.hstack([np.broadcast_to(prefix, (data.shape[0], 4)), data])


def _with_nulls(out: np.ndarray, null: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Mark ``null`` rows: length -1 and none of their data bytes in the output."""
    if null is None or not null.any():
        return out, None
    out[null, :4] = _NULL_LEN
    mask = np.ones(out.shape, dtype=bool)
    mask[null, 4:] = False
    return out, mask


def _fixed(
    values: np.ndarray, be_dtype: str, null: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    size = np.dtype(be_dtype).itemsize
    data = np.ascontiguousarray(values.astype(be_dtype)).view(np.uint8).reshape(-1, size)
    out = _with_length(data, size)
    return _with_nulls(out, null)


def _numeric(
    mantissa: np.ndarray, exponent: np.ndarray, dscale: int, null: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """numeric from ``mantissa * 10**exponent`` (int64 arrays); PostgreSQL strips zero digit groups."""
    m = mantissa.astype(np.int64)
    sign = np.where(m < 0, 0x4000, 0).astype(np.int64)
    m = np.abs(m)
    e = exponent.astype(np.int64)
    shift = np.mod(e, 4)
    if np.any(m > np.iinfo(np.int64).max // 1000):
        raise LoadError("a numeric mantissa is too large to encode: keep mantissas below 9.2e15")
    m = m * (10**shift)
    group_exp = (e - shift) // 4
    digits = np.empty((m.size, _NUMERIC_GROUPS), dtype=np.int64)
    rest = m
    for i in range(_NUMERIC_GROUPS - 1, -1, -1):
        digits[:, i] = rest % 10_000
        rest = rest // 10_000
    weight = (_NUMERIC_GROUPS - 1) + group_exp
    header = np.stack(
        [np.full(m.size, _NUMERIC_GROUPS), weight, sign, np.full(m.size, dscale)], axis=1
    ).astype(">i2")
    body = np.hstack(
        [
            header.view(np.uint8).reshape(m.size, 8),
            digits.astype(">i2").view(np.uint8).reshape(m.size, -1),
        ]
    )
    out = _with_length(np.ascontiguousarray(body), 8 + 2 * _NUMERIC_GROUPS)
    return _with_nulls(out, null)


def _text(values: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(values, pd.Categorical):
        codes = np.asarray(values.codes, dtype=np.int64)
        categories = [str(c).encode() for c in values.categories]
    else:
        arr = np.asarray(values, dtype=object)
        codes, uniques = pd.factorize(arr, use_na_sentinel=True)
        categories = [str(c).encode() for c in uniques]
    k = len(categories)
    lengths = np.zeros(k + 1, dtype=np.int64)
    lengths[:k] = [len(c) for c in categories]
    widest = int(lengths.max()) if k else 0
    table = np.zeros((k + 1, 4 + widest), dtype=np.uint8)
    table[:, :4] = lengths.astype(">i4").view(np.uint8).reshape(k + 1, 4)
    if k:
        body = table[:k, 4:]
        body[np.arange(widest)[None, :] < lengths[:k, None]] = np.frombuffer(
            b"".join(categories), dtype=np.uint8
        )
        table[:k, 4:] = body
    table[k, :4] = _NULL_LEN  # NULL: length -1, no data
    idx = np.where(codes < 0, k, codes)
    out = table[idx]
    mask = np.arange(4 + widest)[None, :] < (4 + lengths[idx])[:, None]
    return out, mask


def encode_column(pg_type: str, values: Any, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One column as (rows x width bytes, mask or None when every byte is used)."""
    if pg_type == "text":
        return _text(values, n)
    if pg_type == "bigint":
        return _fixed(np.asarray(values), ">i8", None)
    if pg_type == "integer":
        arr = np.asarray(values)
        if arr.size and (arr.max() > 2**31 - 1 or arr.min() < -(2**31)):
            raise LoadError(
                "an integer column holds a value outside int32: widen the column to bigint"
            )
        return _fixed(arr, ">i4", None)
    if pg_type == "double precision":
        arr = np.asarray(values, dtype=np.float64)
        return _fixed(arr, ">f8", np.isnan(arr))
    if pg_type == "timestamptz":
        arr = np.asarray(values).astype("datetime64[us]")
        null = np.isnat(arr)
        return _fixed(arr.view(np.int64) - PG_EPOCH_US, ">i8", null)
    if pg_type == "date":
        arr = np.asarray(values).astype("datetime64[D]")
        null = np.isnat(arr)
        return _fixed(arr.view(np.int64) - PG_EPOCH_DAYS, ">i4", null)
    match = _NUMERIC_RE.match(pg_type)
    if match:
        scale = int(match.group(2))
        if isinstance(values, ScaledInt):
            return _numeric(values.mantissa, values.exponent, scale, None)
        arr = np.asarray(values, dtype=np.float64)
        null = np.isnan(arr)
        scaled = np.round(np.where(null, 0.0, arr) * 10**scale).astype(np.int64)
        return _numeric(scaled, np.full(n, -scale, dtype=np.int64), scale, null)
    raise LoadError(
        f"column type {pg_type!r} has no binary COPY encoder: add one in ibcbench/pgcopy.py"
    )


def encode_rows(spec: Sequence[tuple[str, str]], columns: Mapping[str, Any], rows: int) -> bytes:
    """The binary COPY body (tuples only, no header or trailer) of one batch."""
    if rows == 0:
        return b""
    field_count = np.frombuffer(np.array([len(spec)], dtype=">i2").tobytes(), dtype=np.uint8)
    parts = [np.broadcast_to(field_count, (rows, 2))]
    masks: list[np.ndarray | None] = [None]
    for name, pg_type in spec:
        data, mask = encode_column(pg_type, columns[name], rows)
        if data.shape[0] != rows:
            raise LoadError(f"column {name!r} has {data.shape[0]} rows, the batch has {rows}")
        parts.append(data)
        masks.append(mask)
    full = np.hstack(parts)
    if all(m is None for m in masks):
        return full.tobytes()
    mask = np.hstack(
        [
            m if m is not None else np.ones(p.shape, dtype=bool)
            for p, m in zip(parts, masks, strict=True)
        ]
    )
    return full[mask].tobytes()


def encode_batch(spec: Sequence[tuple[str, str]], columns: Mapping[str, Any], rows: int) -> bytes:
    """A complete COPY stream (header, tuples, trailer) of one batch."""
    return HEADER + encode_rows(spec, columns, rows) + TRAILER
