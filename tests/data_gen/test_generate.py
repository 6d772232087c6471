"""data_gen.generate: determinism, batches, the manifest, continuation, and the output pinned."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_gen import GenerationParams, generate
from data_gen.generate import column_digest
from tests.data_gen.frames import Frames, collect


def test_same_seed_is_byte_identical_and_other_seeds_differ() -> None:
    a = generate(GenerationParams(seed=7, scale="tiny"))
    b = generate(GenerationParams(seed=7, scale="tiny"))
    c = generate(GenerationParams(seed=8, scale="tiny"))
    for gen in (a, b, c):
        for _ in gen:
            pass
    assert a.manifest()["checksums"] == b.manifest()["checksums"]
    assert a.manifest()["checksums"]["packet_flow"] != c.manifest()["checksums"]["packet_flow"]


def test_batch_size_does_not_change_the_rows(tiny: tuple[Frames, dict]) -> None:
    frames, _ = tiny
    other, _ = collect(GenerationParams(seed=42, scale="tiny", batch_packets=50_000))
    a = frames["packet_flow"].sort_values("id").reset_index(drop=True)
    b = other["packet_flow"].sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a.astype(str), b.astype(str))


def test_manifest_counts_rows(tiny: tuple[Frames, dict]) -> None:
    frames, manifest = tiny
    assert manifest["complete"]
    assert manifest["rows"] == {t: len(f) for t, f in frames.items()}
    assert manifest["rows"]["packet_flow"] == 20_000
    assert manifest["chains"] >= 20


def test_continuation_keeps_ids_and_sequences_going(tiny: tuple[Frames, dict]) -> None:
    frames, _ = tiny
    gen = generate(GenerationParams(seed=42, scale="tiny"))
    for _ in gen:
        pass
    state = gen.next_state
    assert state is not None and state.next_packet_id == 20_001
    nxt, _ = collect(GenerationParams(seed=42, scale="tiny", resume=state))
    both = pd.concat([frames["packet_flow"], nxt["packet_flow"]], ignore_index=True)
    assert both.id.is_unique
    assert nxt["packet_flow"].created_at.min() >= frames["packet_flow"].created_at.max()
    for _, group in both.groupby(["source_chain", "source_channel"]):
        seq = group.sort_values("created_at").sequence.to_numpy()
        assert (np.diff(seq) == 1).all() and seq[0] == 1


def test_batches_stay_bounded() -> None:
    sizes = [
        b.rows
        for b in generate(GenerationParams(scale="small", batch_packets=20_000))
        if b.table == "packet_flow"
    ]
    assert len(sizes) > 5
    assert max(sizes) < 20_000 + 10_000  # whole hours: at most one hour over the bound


def test_checksum_covers_categories_and_values() -> None:
    a, b = hashlib.sha256(), hashlib.sha256()
    column_digest(a, pd.Categorical.from_codes([0, 1], categories=["x", "y"]))
    column_digest(b, pd.Categorical.from_codes([0, 1], categories=["x", "z"]))
    assert a.hexdigest() != b.hexdigest()


#: the manifest of `ibcbench generate --scale tiny --seed 42` (incidents planted), as recorded from
#: its manifest.json: per table, the SHA-256 over its columns batch by batch (column_digest) and the
#: row count. The generator alone, without the encoder. A change that alters the data on purpose
#: updates these values in the same commit and says why; a refactor must leave them alone.
TINY_SEED_42_CHECKSUMS = {
    "packet_flow": "05f1439d498c24ec18a72f8542de189adff24fe95cc2acbe7a3fca81f11173cd",
    "clearing_operations": "4bcc3773723c8114c4576bab22fd261beb5d7105ba8fc125d3198d5eb0e4a384",
    "network_stats": "71a92933fdd753e504a13c888405ae05b1ebcc77bd44581a00e29a19af9b2767",
    "channel_performance": "265b210f98d5a2daf6417ee211cd783d61cb9f13503b7a580fc591f28bd82eff",
    "relayer_performance": "52f05773b71ec384bb931478fc5a984a7c43f705a775b0234ec2e3b64d108b8b",
}
TINY_SEED_42_ROWS = {
    "packet_flow": 20_000,
    "clearing_operations": 18_761,
    "network_stats": 22,
    "channel_performance": 3_695,
    "relayer_performance": 24,
}


def test_the_tiny_seed_42_tables_have_the_recorded_checksums() -> None:
    gen = generate(GenerationParams(seed=42, scale="tiny"))
    for _ in gen:
        pass
    manifest = gen.manifest()
    assert manifest["rows"] == TINY_SEED_42_ROWS
    assert manifest["checksums"] == TINY_SEED_42_CHECKSUMS


#: sha256 over every file (name, then bytes) of `generate_dataset(tiny, seed 42)`: the generator's and
#: the encoder's output, pinned. A change that alters it on purpose updates this value in the same
#: commit and says why; a refactor must leave it alone. Changed on purpose when incidents were planted
#: (data_gen.incidents, on by default); the incident-free traffic keeps the value pinned before them.
GOLDEN_TINY_SHA256 = "095b46c14fe1c6fcd0e9e9a0dc43d2963e047e66616a7dd6430bca2a1cf162b1"
GOLDEN_TINY_NO_INCIDENTS_SHA256 = "4eaa24f67bb9d3e6f67e4596827d1fab08603661205a164586fb19f194826fae"


@pytest.mark.parametrize(
    ("incidents", "golden"),
    [(True, GOLDEN_TINY_SHA256), (False, GOLDEN_TINY_NO_INCIDENTS_SHA256)],
)
def test_the_tiny_dataset_folder_is_byte_for_byte_the_pinned_one(
    tmp_path: Path, incidents: bool, golden: str
) -> None:
    from ibcbench.data.load import generate_dataset

    generate_dataset(
        GenerationParams(seed=42, scale="tiny", incidents=incidents), tmp_path, quiet=True
    )
    digest = hashlib.sha256()
    for path in sorted(tmp_path.iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    assert digest.hexdigest() == golden
