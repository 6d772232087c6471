"""Bech32 (BIP-173) addresses, encoded for many accounts at once with numpy.

Cosmos accounts are 20 bytes (prefix + 39 characters: ``cosmos1...`` is 45 long); contracts and
interchain accounts are 32 bytes (prefix + 59).
"""

from __future__ import annotations

import functools

import numpy as np

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_CHARSET_BYTES = np.frombuffer(CHARSET.encode(), dtype=np.uint8)
_REV = {c: i for i, c in enumerate(CHARSET)}


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _generator_table() -> np.ndarray:
    table = np.zeros(32, dtype=np.uint32)
    for top in range(32):
        for bit, gen in enumerate(_GEN):
            if (top >> bit) & 1:
                table[top] ^= gen
    return table


_GEN_TABLE = _generator_table()


def _polymod_arrays(values: np.ndarray, start: int = 1) -> np.ndarray:
    """BIP-173 polymod over each row of ``values`` (rows x n, 5-bit ints), from state ``start``."""
    chk = np.full(values.shape[0], start, dtype=np.uint32)
    columns = np.ascontiguousarray(values.T, dtype=np.uint32)
    for i in range(columns.shape[0]):
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ columns[i] ^ _GEN_TABLE[top]
    return chk


@functools.cache
def _hrp_state(hrp: str) -> int:
    """The polymod state after a human-readable prefix (the same for every address of a chain)."""
    return int(_polymod_arrays(np.array([_hrp_expand(hrp)], dtype=np.uint8))[0])


def _to_5bit(data: np.ndarray) -> np.ndarray:
    """Regroup rows of bytes (rows x n uint8) into 5-bit groups, zero-padded (BIP-173 convertbits)."""
    rows, nbytes = data.shape
    bits = np.unpackbits(data, axis=1)
    ngroups = (nbytes * 8 + 4) // 5
    padded = np.zeros((rows, ngroups * 5), dtype=np.uint8)
    padded[:, : nbytes * 8] = bits
    g = padded.reshape(rows, ngroups, 5)
    return (
        (g[:, :, 0] << 4) | (g[:, :, 1] << 3) | (g[:, :, 2] << 2) | (g[:, :, 3] << 1) | g[:, :, 4]
    )


def encode_many(hrp: str, data: np.ndarray) -> np.ndarray:
    """Bech32 addresses for each row of ``data`` (rows x 20 or 32 bytes); returns an object array of str."""
    if data.ndim != 2 or data.dtype != np.uint8:
        raise ValueError("data must be a 2-D uint8 array (one account per row)")
    rows = data.shape[0]
    if rows == 0:
        return np.array([], dtype=object)
    five = _to_5bit(data)
    # every row starts with the same prefix: its polymod state is computed once
    after_hrp = _hrp_state(hrp)
    values = np.concatenate([five, np.zeros((rows, 6), dtype=np.uint8)], axis=1)
    polymod = _polymod_arrays(values, after_hrp) ^ 1
    checksum = np.stack([(polymod >> (5 * (5 - i))) & 31 for i in range(6)], axis=1).astype(
        np.uint8
    )
    chars = _CHARSET_BYTES[np.concatenate([five, checksum], axis=1)]
    prefix = (hrp + "1").encode()
    body = chars.tobytes()
    width = chars.shape[1]
    return np.array(
        [prefix.decode() + body[i * width : (i + 1) * width].decode() for i in range(rows)],
        dtype=object,
    )


def encode(hrp: str, data: bytes) -> str:
    return str(encode_many(hrp, np.frombuffer(data, dtype=np.uint8).reshape(1, -1))[0])


def decode(address: str) -> tuple[str, bytes]:
    """Split and verify an address; raises ValueError on a bad checksum or character."""
    if address.lower() != address and address.upper() != address:
        raise ValueError("mixed case")
    address = address.lower()
    pos = address.rfind("1")
    if pos < 1 or pos + 7 > len(address):
        raise ValueError("no separator or too short")
    hrp, data_part = address[:pos], address[pos + 1 :]
    try:
        values = [_REV[c] for c in data_part]
    except KeyError as exc:
        raise ValueError(f"invalid character {exc.args[0]!r}") from exc
    arr = np.array([[*_hrp_expand(hrp), *values]], dtype=np.uint8)
    if int(_polymod_arrays(arr)[0]) != 1:
        raise ValueError("bad checksum")
    five = values[:-6]
    acc, bits, out = 0, 0, bytearray()
    for v in five:
        acc = (acc << 5) | v
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc & ((1 << bits) - 1)):
        raise ValueError("non-zero padding")
    return hrp, bytes(out)
