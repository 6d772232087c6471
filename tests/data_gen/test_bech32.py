"""data_gen.bech32: BIP-173 vectors, checksums, and the vectorized encoder against the scalar one."""

from __future__ import annotations

import numpy as np
import pytest

from data_gen import bech32


@pytest.mark.parametrize(
    ("address", "hrp"),
    [("cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu", "cosmos"), ("a12uel5l", "a")],
)
def test_bech32_known_vectors_decode(address: str, hrp: str) -> None:
    assert bech32.decode(address)[0] == hrp


@pytest.mark.parametrize(
    "bad",
    [
        "cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xv",
        "cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xb",
    ],
)
def test_bech32_rejects_bad_checksums_and_characters(bad: str) -> None:
    with pytest.raises(ValueError):
        bech32.decode(bad)


@pytest.mark.parametrize(("width", "length"), [(20, len("osmo") + 39), (32, len("osmo") + 59)])
def test_encode_many_gives_what_encode_gives_and_decodes_back(width: int, length: int) -> None:
    keys = np.random.default_rng(1).integers(0, 256, size=(50, width), dtype=np.uint8)
    many = bech32.encode_many("osmo", keys)
    assert list(many) == [bech32.encode("osmo", bytes(k)) for k in keys]
    for address, key in zip(many, keys, strict=True):
        assert len(address) == length
        assert bech32.decode(address) == ("osmo", bytes(key))
