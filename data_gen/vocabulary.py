"""The strings the tables repeat (chain ids, channels, denoms, addresses), built once per network,
and pandas Categoricals over them: the text columns' arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_gen.network import ChainNetwork, voucher_denom


def categorical(values: np.ndarray) -> pd.Categorical:
    """Categorical of ``values`` with its categories sorted."""
    codes, uniques = pd.factorize(values, sort=True)
    return pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype=object))


def from_vocab(codes: np.ndarray, vocab: np.ndarray) -> pd.Categorical:
    """Categorical over the used part of ``vocab`` (codes -1 stay NULL)."""
    valid = codes >= 0
    present = np.bincount(codes[valid], minlength=vocab.size) > 0  # O(n): no sort of the rows
    used = np.flatnonzero(present)
    # the vocabulary may repeat a string (e.g. software per relayer): merge equal categories, sorted
    names, remap = np.unique(vocab[used].astype(str), return_inverse=True)
    lookup = np.full(vocab.size, -1, dtype=np.int64)
    lookup[used] = remap
    out = np.where(valid, lookup[np.maximum(codes, 0)], -1)
    return pd.Categorical.from_codes(out, categories=pd.Index(names.astype(object), dtype=object))


#: addresses kept encoded between batches (about 100 bytes each)
ADDRESS_CACHE_LIMIT = 400_000


class Vocabulary:
    """Strings the tables repeat, built once per network: chain ids, channels, denoms, addresses."""

    def __init__(self, network: ChainNetwork) -> None:
        t = network
        self.network = t
        self.chain_ids = np.array([c.chain_id for c in t.chains], dtype=object)
        self.channel = np.array([f"channel-{c}" for c in range(0, 80_000)], dtype=object)
        native = np.array([c.denom for c in t.chains], dtype=object)
        # per route: the denom sent from the source (native) or a voucher of the destination's token
        self.route_native = native[t.route_src]
        self.route_voucher = np.array(
            [
                voucher_denom(f"transfer/channel-{ch}/{native[d]}")
                for ch, d in zip(t.route_src_channel, t.route_dst, strict=True)
            ],
            dtype=object,
        )
        self.fee_denom = native
        # per chain: addresses by wallet index, and which are filled in
        self._addresses: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cached = 0

    def addresses(self, chain_of_row: np.ndarray, wallet_of_row: np.ndarray) -> pd.Categorical:
        """Bech32 addresses for (chain, wallet) rows as a Categorical; encodes each key once."""
        n_wallets = self.network.n_wallets
        keys = chain_of_row.astype(np.int64) * n_wallets + wallet_of_row
        uniq, inverse = np.unique(keys, return_inverse=True)
        if self._cached + uniq.size > ADDRESS_CACHE_LIMIT:
            # bounded memory over any span (10M packets can touch millions of chain x wallet keys);
            # heavy wallets come back at once, the output does not depend on what is cached
            self._addresses.clear()
            self._cached = 0
        strings = np.empty(uniq.size, dtype=object)
        chains = uniq // n_wallets
        present = np.unique(chains)  # uniq is sorted: each chain's keys are one run
        starts = np.searchsorted(chains, present)
        ends = np.append(starts[1:], chains.size)
        for chain, lo, hi in zip(present.tolist(), starts.tolist(), ends.tolist(), strict=True):
            wallets = uniq[lo:hi] % n_wallets
            if chain not in self._addresses:
                self._addresses[chain] = (
                    np.empty(n_wallets, dtype=object),
                    np.zeros(n_wallets, dtype=bool),
                )
            known, filled = self._addresses[chain]
            missing = wallets[~filled[wallets]]
            if missing.size:
                known[missing] = self.network.wallet_addresses(chain, missing)
                filled[missing] = True
                self._cached += missing.size
            strings[lo:hi] = known[wallets]
        # categories in key order (chain, wallet): unique strings, no sort of strings needed
        return pd.Categorical.from_codes(inverse, categories=pd.Index(strings, dtype=object))
