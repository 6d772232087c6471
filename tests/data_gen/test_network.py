"""data_gen.network: the chains, channels, relayers and wallets of a seed."""

from __future__ import annotations

import numpy as np
import pytest

from data_gen import bech32, build_network, voucher_denom
from data_gen.chains import CHAINS, HUBS, REAL_CHANNELS
from data_gen.network import ChainNetwork


@pytest.fixture(scope="module")
def network() -> ChainNetwork:
    return build_network(42, wallets=2_000, relayers=24)


def test_voucher_denom_matches_the_ics20_vector() -> None:
    assert voucher_denom("transfer/channel-0/uatom") == (
        "ibc/27394FB092D2ECCD56123C74F36E4C1F926001CEADA9CA97EA622B25F41E5EB2"
    )


def test_the_same_seed_builds_the_same_network_and_another_seed_another(
    network: ChainNetwork,
) -> None:
    again = build_network(42, wallets=2_000, relayers=24)
    other = build_network(43, wallets=2_000, relayers=24)
    for field in ("pair_a", "pair_channel_a", "pair_relayers", "route_weight", "wallet_bytes20"):
        assert np.array_equal(getattr(network, field), getattr(again, field))
    assert list(network.relayer_name) == list(again.relayer_name)
    assert not np.array_equal(network.wallet_bytes20, other.wallet_bytes20)


def test_pairs_hold_the_real_channels_and_link_every_hub_to_every_chain(
    network: ChainNetwork,
) -> None:
    index = {c.chain_id: i for i, c in enumerate(CHAINS)}
    ends = set(zip(network.pair_a.tolist(), network.pair_channel_a.tolist(), strict=True)) | set(
        zip(network.pair_b.tolist(), network.pair_channel_b.tolist(), strict=True)
    )
    for a, ca, b, cb in REAL_CHANNELS:
        assert (index[a], ca) in ends and (index[b], cb) in ends
    linked = {
        frozenset(p) for p in zip(network.pair_a.tolist(), network.pair_b.tolist(), strict=True)
    }
    assert len(linked) == network.pair_a.size  # one channel pair per two chains at most
    for hub in HUBS:
        others = set(range(len(CHAINS))) - {index[hub]}
        assert all(frozenset((index[hub], c)) in linked for c in others)
    assert len(ends) == 2 * network.pair_a.size  # a channel number is used once per chain


def test_routes_are_both_directions_of_each_pair(network: ChainNetwork) -> None:
    assert network.route_src.size == 2 * network.pair_a.size
    fwd, back = network.route_src[0::2], network.route_src[1::2]
    assert np.array_equal(fwd, network.pair_a) and np.array_equal(back, network.pair_b)
    assert np.array_equal(network.route_dst[0::2], network.pair_b)
    assert network.route_weight.sum() == pytest.approx(1.0)
    assert network.route_key(0) == (
        CHAINS[int(network.pair_a[0])].chain_id,
        "transfer",
        f"channel-{int(network.pair_channel_a[0])}",
    )


def test_relayer_slots_are_distinct_operators_and_busy_pairs_have_several(
    network: ChainNetwork,
) -> None:
    for row in network.pair_relayers:
        served = row[row >= 0]
        assert served.size >= 1 and len(set(served.tolist())) == served.size
        assert (row[served.size :] == -1).all()  # padding only after the slots
    counts = (network.pair_relayers >= 0).sum(axis=1)
    assert counts.max() >= 3
    assert np.allclose(network.pair_pause_rate_per_day, 1.2 / counts)
    assert set(network.relayer_software) <= {"hermes", "go-relayer", "other"}
    assert len(set(network.relayer_name)) == network.relayer_name.size


def test_a_wallet_has_the_same_key_on_every_chain(network: ChainNetwork) -> None:
    wallets = np.array([0, 1, network.n_wallets - 1])  # two accounts, one contract
    for chain in (0, 5):
        addresses = network.wallet_addresses(chain, wallets)
        keys = [bech32.decode(a) for a in addresses]
        assert {hrp for hrp, _ in keys} == {CHAINS[chain].prefix}
        assert [len(k) for _, k in keys] == [20, 20, 32]
    assert network.n_wallets == 2_000
    assert [bech32.decode(a)[1] for a in network.wallet_addresses(0, wallets)] == [
        bech32.decode(a)[1] for a in network.wallet_addresses(5, wallets)
    ]
