"""data_gen.vocabulary: Categoricals over the repeated strings, and the address cache."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from data_gen import GenerationParams, bech32, build_network, generate
from data_gen.vocabulary import categorical, from_vocab
from tests.data_gen.frames import Frames


def test_from_vocab_keeps_only_used_strings_merges_repeats_and_leaves_minus_one_null() -> None:
    vocab = np.array(["hermes", "other", "hermes", "unused"], dtype=object)
    cat = from_vocab(np.array([2, 0, -1, 1]), vocab)
    assert list(cat.categories) == ["hermes", "other"]
    assert cat.codes.tolist() == [0, 0, -1, 1]
    assert list(categorical(np.array(["b", "a", "b"], dtype=object)).categories) == ["a", "b"]


def test_every_address_is_valid_bech32_with_its_chains_prefix(tiny: tuple[Frames, dict]) -> None:
    frames, _ = tiny
    network = build_network(42, wallets=2_000, relayers=24)
    prefix = {c.chain_id: c.prefix for c in network.chains}
    pf = frames["packet_flow"].drop_duplicates(["source_chain", "sender"]).head(3000)
    for chain, addr in zip(pf.source_chain, pf.sender, strict=True):
        hrp, data = bech32.decode(addr)
        assert hrp == prefix[chain]
        assert len(data) in (20, 32)
        assert len(addr) == len(hrp) + (39 if len(data) == 20 else 59)  # "1" + data + checksum
    for addr in frames["packet_flow"].relayer.dropna().unique():
        assert bech32.decode(addr)[0] == "cosmos"


def test_a_small_address_cache_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import data_gen.vocabulary as vocabulary

    params = GenerationParams(seed=3, scale="tiny", batch_packets=2_000)
    reference = generate(params)
    for _ in reference:
        pass
    sizes: list[int] = []
    original = vocabulary.Vocabulary.addresses

    def watched(self, chain_of_row, wallet_of_row):  # type: ignore[no-untyped-def]
        out = original(self, chain_of_row, wallet_of_row)
        sizes.append(self._cached)
        return out

    monkeypatch.setattr(vocabulary, "ADDRESS_CACHE_LIMIT", 1_500)
    monkeypatch.setattr(vocabulary.Vocabulary, "addresses", watched)
    bounded = generate(params)
    for _ in bounded:
        pass
    assert max(sizes) <= 1_500 + 2_000 * 2  # at most one batch's keys over the bound
    assert any(b < a for a, b in pairwise(sizes))  # it was cleared
    assert bounded.manifest()["checksums"] == reference.manifest()["checksums"]
