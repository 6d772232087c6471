"""The advisory lock keys (pure)."""

from __future__ import annotations

from ibcbench import locks


def test_the_kits_advisory_lock_keys_are_distinct_and_fit_32_bits() -> None:
    assert len(set(locks.ALL_KEYS)) == len(locks.ALL_KEYS)
    assert all(0 < key < 2**31 for key in locks.ALL_KEYS)
