"""The network the traffic runs on: chains, channel pairs, relayer operators, wallets.

Everything here depends only on the seed, so a continuation reuses the same channels, relayers and
wallets. Weights are modelling choices: Zipf-like over chain popularity (hubs first), several relayers
on busy channels and one or two on the tail.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from data_gen import bech32
from data_gen.chains import CHAINS, HUBS, REAL_CHANNELS, Chain

ZIPF_EXPONENT = 1.15
EXTRA_SPOKE_PAIRS = 14
CONTRACT_WALLET_SHARE = 0.03


def voucher_denom(trace_path: str) -> str:
    """ICS-20 voucher denom: ``ibc/`` + uppercase hex SHA-256 of the trace path."""
    return "ibc/" + hashlib.sha256(trace_path.encode()).hexdigest().upper()


@dataclass(frozen=True)
class ChainNetwork:
    """The IBC network of a seed: chains, the channel pairs between them, directed routes, relayer
    operators and wallets (not PostgreSQL's standbys: those are :class:`ibcbench.infra.scaleout.ScaleOut`)."""

    chains: tuple[Chain, ...]
    # undirected channel pairs: chain index and channel number on each end
    pair_a: np.ndarray
    pair_b: np.ndarray
    pair_channel_a: np.ndarray
    pair_channel_b: np.ndarray
    pair_relayers: np.ndarray  # pairs x max_relayers, -1 padded
    pair_pause_rate_per_day: np.ndarray
    # directed routes: two per pair (a->b, b->a)
    route_pair: np.ndarray
    route_src: np.ndarray
    route_dst: np.ndarray
    route_src_channel: np.ndarray
    route_dst_channel: np.ndarray
    route_weight: np.ndarray
    # relayer operators
    relayer_address: np.ndarray  # object array of str (canonical cosmos1... address)
    relayer_name: np.ndarray
    relayer_software: np.ndarray
    relayer_skill: np.ndarray
    # wallets
    wallet_bytes20: np.ndarray  # accounts (rows x 20)
    wallet_bytes32: np.ndarray  # contracts / interchain accounts (rows x 32)
    wallet_weight: np.ndarray  # sampling weights over all wallets (20-byte first, then 32-byte)

    @property
    def n_wallets(self) -> int:
        return int(self.wallet_bytes20.shape[0] + self.wallet_bytes32.shape[0])

    def channel_name(self, number: int) -> str:
        return f"channel-{number}"

    def route_key(self, route: int) -> tuple[str, str, str]:
        """(chain id, port, channel id) of a route's sending end: the key of its packet sequence."""
        return (
            self.chains[int(self.route_src[route])].chain_id,
            "transfer",
            self.channel_name(int(self.route_src_channel[route])),
        )

    def wallet_addresses(self, chain: int, wallets: np.ndarray) -> np.ndarray:
        """Addresses of ``wallets`` (indices) on ``chain``: the same key, that chain's prefix."""
        prefix = self.chains[chain].prefix
        n20 = self.wallet_bytes20.shape[0]
        out = np.empty(wallets.shape[0], dtype=object)
        small = wallets < n20
        if small.any():
            out[small] = bech32.encode_many(prefix, self.wallet_bytes20[wallets[small]])
        if (~small).any():
            out[~small] = bech32.encode_many(prefix, self.wallet_bytes32[wallets[~small] - n20])
        return out


def _monikers(seed: int, n: int) -> list[str]:
    from faker import Faker

    fake = Faker()
    fake.seed_instance(seed)
    suffixes = ("Validator", "Relayer", "Labs", "Nodes", "Staking", "Infra", "Ops")
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = f"{fake.last_name()} {suffixes[fake.random_int(0, len(suffixes) - 1)]}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def build_network(seed: int, *, wallets: int = 2_000, relayers: int = 24) -> ChainNetwork:
    """The chains, channels, relayers and wallets for ``seed``.

    One generator, ``(seed, 1)``, feeds every phase in this order (channel pairs, their weights,
    relayer slots, operators, routes, wallets): the order of the draws is part of the data.
    """
    rng = np.random.default_rng([seed, 1])
    popularity = 1.0 / np.arange(1, len(CHAINS) + 1) ** ZIPF_EXPONENT
    pairs = _channel_pairs(rng, popularity)
    pair_a = np.array([p[0] for p in pairs], dtype=np.int64)
    pair_b = np.array([p[1] for p in pairs], dtype=np.int64)
    pair_ca = np.array([p[2] for p in pairs], dtype=np.int64)
    pair_cb = np.array([p[3] for p in pairs], dtype=np.int64)
    pair_weight = popularity[pair_a] * popularity[pair_b] * rng.lognormal(0.0, 0.35, len(pairs))
    pair_weight /= pair_weight.sum()
    pair_relayers, k = _relayer_slots(rng, pair_weight, relayers)
    relayer_address, software, skill = _operators(rng, relayers)
    route_pair, route_src, route_dst, route_src_channel, route_dst_channel, route_weight = _routes(
        rng, pair_a, pair_b, pair_ca, pair_cb, pair_weight
    )
    wallet_bytes20, wallet_bytes32, wallet_weight = _wallets(rng, wallets)
    return ChainNetwork(
        chains=CHAINS,
        pair_a=pair_a,
        pair_b=pair_b,
        pair_channel_a=pair_ca,
        pair_channel_b=pair_cb,
        pair_relayers=pair_relayers,
        # a channel pauses (every relayer idle) less often the more relayers it has
        pair_pause_rate_per_day=1.2 / k,
        route_pair=route_pair,
        route_src=route_src,
        route_dst=route_dst,
        route_src_channel=route_src_channel,
        route_dst_channel=route_dst_channel,
        route_weight=route_weight,
        relayer_address=relayer_address,
        relayer_name=np.array(_monikers(seed, relayers), dtype=object),
        relayer_software=software,
        relayer_skill=skill,
        wallet_bytes20=wallet_bytes20,
        wallet_bytes32=wallet_bytes32,
        wallet_weight=wallet_weight,
    )


def _channel_pairs(
    rng: np.random.Generator, popularity: np.ndarray
) -> list[tuple[int, int, int, int]]:
    """Undirected channel pairs (chain a, chain b, channel on a, channel on b): the real channels,
    every hub to every chain, then spokes to spokes drawn by popularity."""
    chains = CHAINS
    index = {c.chain_id: i for i, c in enumerate(chains)}
    n = len(chains)
    used: dict[int, set[int]] = {i: set() for i in range(n)}
    pairs: list[tuple[int, int, int, int]] = []
    linked: set[frozenset[int]] = set()

    def add_pair(a: int, b: int, ca: int | None = None, cb: int | None = None) -> None:
        key = frozenset((a, b))
        if a == b or key in linked:
            return
        ca = ca if ca is not None else _free_channel(rng, used[a], chains[a].chain_id)
        cb = cb if cb is not None else _free_channel(rng, used[b], chains[b].chain_id)
        used[a].add(ca)
        used[b].add(cb)
        linked.add(key)
        pairs.append((a, b, ca, cb))

    for a, ca, b, cb in REAL_CHANNELS:
        add_pair(index[a], index[b], ca, cb)
    for hub in HUBS:
        for c in range(n):
            add_pair(index[hub], c)
    spokes = [i for i in range(n) if chains[i].chain_id not in HUBS]
    while len(pairs) < len(REAL_CHANNELS) + EXTRA_SPOKE_PAIRS + 4 * n - 10:
        a, b = rng.choice(
            spokes, size=2, replace=False, p=popularity[spokes] / popularity[spokes].sum()
        )
        before = len(pairs)
        add_pair(int(a), int(b))
        if len(pairs) == before and len(linked) >= len(spokes) * (len(spokes) - 1) // 2:
            break
    return pairs


def _relayer_slots(
    rng: np.random.Generator, pair_weight: np.ndarray, relayers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which operators serve each pair (pairs x max_relayers, -1 padded) and how many: several on
    the busiest quarter of the pairs, one or two on the rest; a few operators run many channels
    (Zipf over operator rank)."""
    n_pairs = pair_weight.size
    operator_weight = 1.0 / np.arange(1, relayers + 1) ** 0.9
    operator_weight /= operator_weight.sum()
    order = np.argsort(-pair_weight)
    busy = np.zeros(n_pairs, dtype=bool)
    busy[order[: max(1, n_pairs // 4)]] = True
    k = np.where(busy, rng.integers(3, 11, n_pairs), rng.integers(1, 3, n_pairs))
    k = np.minimum(k, relayers)
    pair_relayers = np.full((n_pairs, int(k.max())), -1, dtype=np.int64)
    for i in range(n_pairs):
        pair_relayers[i, : k[i]] = rng.choice(
            relayers, size=int(k[i]), replace=False, p=operator_weight
        )
    return pair_relayers, k


def _operators(
    rng: np.random.Generator, relayers: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The relayer operators' addresses, software and skill (how often each wins a race)."""
    keys = rng.integers(0, 256, size=(relayers, 20), dtype=np.uint8)
    relayer_address = bech32.encode_many("cosmos", keys)
    software = rng.choice(
        np.array(["hermes", "go-relayer", "other"], dtype=object),
        size=relayers,
        p=[0.6, 0.35, 0.05],
    )
    skill = rng.lognormal(0.0, 0.6, relayers)
    return relayer_address, software, skill


def _routes(
    rng: np.random.Generator,
    pair_a: np.ndarray,
    pair_b: np.ndarray,
    pair_ca: np.ndarray,
    pair_cb: np.ndarray,
    pair_weight: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The directed routes, two per pair (a->b, b->a): :class:`ChainNetwork`'s ``route_*`` fields in
    their order; each pair's weight is split 40-60% between its two directions."""
    n_pairs = pair_a.size
    route_pair = np.repeat(np.arange(n_pairs), 2)
    forward = np.tile([True, False], n_pairs)
    split = rng.uniform(0.4, 0.6, n_pairs)
    route_weight = pair_weight[route_pair] * np.where(
        forward, split[route_pair], 1 - split[route_pair]
    )
    route_weight /= route_weight.sum()
    return (
        route_pair,
        np.where(forward, pair_a[route_pair], pair_b[route_pair]),
        np.where(forward, pair_b[route_pair], pair_a[route_pair]),
        np.where(forward, pair_ca[route_pair], pair_cb[route_pair]),
        np.where(forward, pair_cb[route_pair], pair_ca[route_pair]),
        route_weight,
    )


def _wallets(rng: np.random.Generator, wallets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wallet keys (20-byte accounts, then 32-byte contracts) and their sampling weights: few heavy
    wallets, many light ones (Zipf over a random rank order)."""
    n_contracts = round(wallets * CONTRACT_WALLET_SHARE)
    wallet_bytes20 = rng.integers(0, 256, size=(wallets - n_contracts, 20), dtype=np.uint8)
    wallet_bytes32 = rng.integers(0, 256, size=(n_contracts, 32), dtype=np.uint8)
    ranks = rng.permutation(wallets) + 1
    wallet_weight = 1.0 / ranks**1.05
    wallet_weight /= wallet_weight.sum()
    return wallet_bytes20, wallet_bytes32, wallet_weight


def _free_channel(rng: np.random.Generator, used: set[int], chain_id: str) -> int:
    """A channel number not yet used on this chain: hubs have very high numbers, spokes low ones."""
    high = {"osmosis-1": 80_000, "cosmoshub-4": 1_200, "neutron-1": 5_000, "noble-1": 300}.get(
        chain_id, 250
    )
    while True:
        number = int(rng.integers(0, high))
        if number not in used:
            return number
