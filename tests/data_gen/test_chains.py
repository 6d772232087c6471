"""data_gen.chains: the table of real chains and channels is consistent."""

from __future__ import annotations

import pytest

from data_gen.chains import CHAINS, HUBS, REAL_CHANNELS, revision_number


@pytest.mark.parametrize(
    ("chain_id", "revision"),
    [("osmosis-1", 1), ("evmos_9001-2", 2), ("celestia", 0), ("dymension_1100-1", 1), ("a-b", 0)],
)
def test_the_revision_number_is_the_numeric_suffix(chain_id: str, revision: int) -> None:
    assert revision_number(chain_id) == revision


def test_chain_ids_and_prefixes_are_unique_and_the_hubs_come_first() -> None:
    ids = [c.chain_id for c in CHAINS]
    assert len(set(ids)) == len(ids)
    assert len({c.prefix for c in CHAINS}) == len(CHAINS)
    assert tuple(ids[: len(HUBS)]) == HUBS


def test_real_channels_join_known_chains_with_one_channel_number_per_end() -> None:
    ids = {c.chain_id for c in CHAINS}
    ends: set[tuple[str, int]] = set()
    for a, ca, b, cb in REAL_CHANNELS:
        assert {a, b} <= ids and a != b
        assert (a, ca) not in ends and (b, cb) not in ends
        ends |= {(a, ca), (b, cb)}
