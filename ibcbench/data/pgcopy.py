"""PostgreSQL's binary COPY format, encoded from column arrays without a loop per row.

Every field is its int32 length followed by its bytes (length -1 and no bytes for NULL); every row
is an int16 field count followed by its fields. The encoder builds each column's fields for all
rows at once and lets Arrow concatenate them row by row:

- consecutive fixed-width columns (bigint, integer, double, timestamptz, date, numeric) are one
  ``rows x width`` byte matrix: big-endian views, length prefixes broadcast; a NULL field gets
  length -1 and its data bytes are masked out;
- text comes from a ``pandas.Categorical``: each category is encoded once (length + UTF-8) and the
  rows gather from that small table (``take``), NULL (code -1) gathering the -1 marker;
  consecutive text columns with few distinct combinations (a channel's chain, port and channel
  ids) are joined once per combination, then gathered;
- ``pyarrow.compute.binary_join_element_wise`` concatenates the pieces of every row, so the result's
  data buffer is the COPY body.

numeric comes from :class:`data_gen.columns.ScaledInt` (``mantissa * 10**exponent``, exact) or from
float64 rounded to the column's scale; both are written as five base-10000 digit groups (the server
strips the leading and trailing zero groups). Format: PostgreSQL's documentation of COPY, "Binary
Format".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_gen.columns import ScaledInt
from ibcbench.errors import LoadError

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970-01-01
PG_EPOCH_DAYS = 10_957
# numeric values are written as NUMERIC_GROUPS base-10000 digit groups: a mantissa up to
# NUMERIC_MAX_MANTISSA, shifted by up to 3 decimal places to align its exponent to whole groups,
# has at most 19 digits
NUMERIC_MAX_MANTISSA = np.iinfo(np.int64).max // 1000
NUMERIC_GROUPS = 5
_NUMERIC_RE = re.compile(r"numeric\((\d+),\s*(\d+)\)")
_NULL_LEN = np.array([-1], dtype=">i4").view(np.uint8)
_EMPTY = pa.scalar(b"", pa.large_binary())
_NULL_FIELD = pa.array([_NULL_LEN.tobytes()], type=pa.large_binary())
_FIXED = {
    "bigint": ">i8",
    "integer": ">i4",
    "double precision": ">f8",
    "timestamptz": ">i8",
    "date": ">i4",
}


def _prefix(length: int, rows: int) -> np.ndarray:
    """The int32 length prefix of a fixed-width field, for every row (a read-only broadcast)."""
    return np.broadcast_to(np.array([length], dtype=">i4").view(np.uint8), (rows, 4))


def _be_bytes(values: np.ndarray, be_dtype: str) -> np.ndarray:
    size = np.dtype(be_dtype).itemsize
    return np.ascontiguousarray(values, dtype=be_dtype).view(np.uint8).reshape(-1, size)


def _numeric_bytes(mantissa: np.ndarray, exponent: np.ndarray, dscale: int) -> np.ndarray:
    """numeric's binary form (ndigits, weight, sign, dscale, digit groups) of ``m * 10**e``."""
    m = np.asarray(mantissa, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    negative = m < 0
    m = np.abs(m)
    if m.size and m.max() > NUMERIC_MAX_MANTISSA:
        raise LoadError(
            "a numeric mantissa is too large to encode: keep ScaledInt mantissas below 9.2e15"
        )
    shift = np.mod(e, 4)  # align the exponent to whole digit groups
    m = m * 10**shift
    rows = m.size
    out = np.empty((rows, 4 + NUMERIC_GROUPS), dtype=np.int64)
    out[:, 0] = NUMERIC_GROUPS
    out[:, 1] = (NUMERIC_GROUPS - 1) + (e - shift) // 4  # weight of the first group
    out[:, 2] = np.where(negative, 0x4000, 0)
    out[:, 3] = dscale
    rest = m
    for i in range(3 + NUMERIC_GROUPS, 3, -1):
        rest, out[:, i] = np.divmod(rest, 10_000)
    return _be_bytes(out, ">i2").reshape(rows, -1)


def _fixed_parts(
    pg_type: str, values: Any, rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A fixed-width column as its length prefix, its data bytes and its NULL rows (or None)."""
    null: np.ndarray | None = None
    if pg_type in ("bigint", "integer"):
        arr = np.asarray(values)
        if arr.dtype.kind not in "iu":
            raise LoadError(f"a {pg_type} column holds {arr.dtype} values: pass an integer array")
        if pg_type == "integer" and arr.size and (arr.max() > 2**31 - 1 or arr.min() < -(2**31)):
            raise LoadError("an integer column holds a value outside int32: make the column bigint")
    elif pg_type == "double precision":
        arr = np.asarray(values, dtype=np.float64)
        null = np.isnan(arr)
    elif pg_type in ("timestamptz", "date"):
        unit = "datetime64[us]" if pg_type == "timestamptz" else "datetime64[D]"
        epoch = PG_EPOCH_US if pg_type == "timestamptz" else PG_EPOCH_DAYS
        dt = np.asarray(values).astype(unit)
        null = np.isnat(dt)
        arr = np.where(null, 0, dt.view(np.int64) - epoch)
    else:
        match = _NUMERIC_RE.fullmatch(pg_type)
        if match is None:
            raise LoadError(
                f"column type {pg_type!r} has no binary COPY encoder: add one in ibcbench/data/pgcopy.py"
            )
        scale = int(match.group(2))
        if isinstance(values, ScaledInt):
            data = _numeric_bytes(values.mantissa, values.exponent, scale)
        else:
            floats = np.asarray(values, dtype=np.float64)
            null = np.isnan(floats)
            scaled = np.round(np.where(null, 0.0, floats) * 10**scale)
            if scaled.size and not np.abs(scaled).max() <= NUMERIC_MAX_MANTISSA:
                raise LoadError(
                    f"a {pg_type} column holds an infinite value or one beyond 9.2e15 units of its "
                    "scale: pass a ScaledInt for amounts this large"
                )
            mantissa = scaled.astype(np.int64)
            data = _numeric_bytes(mantissa, np.full(rows, -scale, dtype=np.int64), scale)
        return _prefix(data.shape[1], rows), data, _some(null)
    data = _be_bytes(arr, _FIXED[pg_type])
    return _prefix(data.shape[1], rows), data, _some(null)


def _some(null: np.ndarray | None) -> np.ndarray | None:
    return null if null is not None and null.any() else None


def _matrix_array(matrix: np.ndarray) -> pa.Array:
    """Rows of a ``rows x width`` byte matrix as an Arrow binary array (no copy)."""
    rows, width = matrix.shape
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(
        pa.large_binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(matrix)]
    )


def _run_array(parts: list[np.ndarray], nulls: list[tuple[int, int, np.ndarray]]) -> pa.Array:
    """Consecutive fixed-width columns as one binary array. ``nulls`` holds (byte offset of the
    field's length, data width, NULL rows) per column with NULLs: those rows get length -1 and lose
    the field's data bytes."""
    matrix = np.hstack(parts)
    rows, width = matrix.shape
    if not nulls:
        return _matrix_array(matrix)
    keep = np.ones(matrix.shape, dtype=bool)
    lengths = np.full(rows, width, dtype=np.int64)
    for at, size, null in nulls:
        matrix[null, at : at + 4] = _NULL_LEN
        keep[null, at + 4 : at + 4 + size] = False
        lengths -= null * size
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(
        pa.large_binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(matrix[keep])]
    )


def _text_fields(values: Any) -> tuple[pa.Array, np.ndarray]:
    """A text column as (each category's field, then the NULL field; each row's index into that).

    Every category is encoded once (length + UTF-8), whatever the number of rows using it.
    """
    if isinstance(values, pd.Categorical):
        codes = np.asarray(values.codes)
        categories = np.asarray(values.categories, dtype=object)
    else:
        codes, categories = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    try:
        strings = pa.array(categories, type=pa.large_string()).cast(pa.large_binary())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        strings = pa.array(categories.astype(str), type=pa.large_string()).cast(pa.large_binary())
    lengths = _matrix_array(_be_bytes(pc.binary_length(strings).to_numpy(), ">i4"))
    table = pa.concat_arrays([pc.binary_join_element_wise(lengths, strings, _EMPTY), _NULL_FIELD])
    return table, np.where(codes < 0, len(strings), codes).astype(np.int64)


class _TextGroup:
    """Consecutive text columns whose combinations are few (a channel's chain, port and channel
    ids): their fields are joined once per distinct combination, then gathered per row."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.members: list[tuple[pa.Array, np.ndarray]] = []
        self.group = np.empty(0, dtype=np.int64)  # each row's combination, once there are members
        self.count = 0

    def add(self, table: pa.Array, index: np.ndarray) -> bool:
        """Take the column in when the combinations stay few; False leaves the group as it was."""
        limit = max(64, self.rows // 8)
        if self.members:
            if self.count > limit:
                return False
            group, uniques = pd.factorize(self.group * len(table) + index)
            if len(uniques) > limit:
                return False
            self.group, self.count = group, len(uniques)
        else:
            self.group, self.count = index, len(table)
        self.members.append((table, index))
        return True

    def array(self) -> pa.Array:
        """Every row's fields of the group's columns, concatenated."""
        if len(self.members) == 1:
            table, index = self.members[0]
            return table.take(pa.array(index))
        sample = np.zeros(self.count, dtype=np.int64)
        sample[self.group] = np.arange(self.rows)  # one row of each combination
        parts = [table.take(pa.array(index[sample])) for table, index in self.members]
        combined = pc.binary_join_element_wise(*parts, _EMPTY)
        return combined.take(pa.array(self.group))


def encode_rows(spec: Sequence[tuple[str, str]], columns: Mapping[str, Any], rows: int) -> bytes:
    """The binary COPY tuples (no header or trailer) of one batch: ``spec`` is (column, type) pairs."""
    return bytes(encode_rows_view(spec, columns, rows))


def encode_rows_view(
    spec: Sequence[tuple[str, str]], columns: Mapping[str, Any], rows: int
) -> memoryview:
    """:func:`encode_rows` as a read-only view of Arrow's buffer (one copy fewer)."""
    if rows == 0:
        return memoryview(b"")
    pieces: list[pa.Array] = []
    run: list[np.ndarray] = [_be_bytes(np.full(rows, len(spec)), ">i2")]  # the field count
    run_nulls: list[tuple[int, int, np.ndarray]] = []
    run_width = 2

    def close_run() -> None:
        nonlocal run_width
        if run:
            pieces.append(_run_array(run, run_nulls))
            run.clear()
            run_nulls.clear()
            run_width = 0

    text: _TextGroup | None = None

    def close_text() -> None:
        nonlocal text
        if text is not None:
            pieces.append(text.array())
            text = None

    for name, pg_type in spec:
        values = columns[name]
        if len(values) != rows:
            raise LoadError(f"column {name!r} has {len(values)} rows but the batch has {rows}")
        if pg_type == "text":
            close_run()
            table, index = _text_fields(values)
            if text is None or not text.add(table, index):
                close_text()
                text = _TextGroup(rows)
                text.add(table, index)
            continue
        close_text()
        prefix, data, null = _fixed_parts(pg_type, values, rows)
        if null is not None:
            run_nulls.append((run_width, data.shape[1], null))
        run.extend((prefix, data))
        run_width += 4 + data.shape[1]
    close_run()
    close_text()
    joined = pieces[0] if len(pieces) == 1 else pc.binary_join_element_wise(*pieces, _EMPTY)
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64)
    start, end = int(offsets[joined.offset]), int(offsets[joined.offset + rows])
    return memoryview(joined.buffers()[2]).cast("B")[start:end]


def encode_batch(spec: Sequence[tuple[str, str]], columns: Mapping[str, Any], rows: int) -> bytes:
    """A complete COPY stream (header, tuples, trailer) of one batch."""
    return HEADER + encode_rows(spec, columns, rows) + TRAILER
