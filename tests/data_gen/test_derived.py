"""data_gen.derived: the derived tables are sums over the packets."""

from __future__ import annotations

import pytest

from data_gen.derived import check_columns
from tests.data_gen.frames import Frames


def test_derived_totals_equal_packet_counts(tiny: tuple[Frames, dict]) -> None:
    frames, _ = tiny
    pf = frames["packet_flow"]
    assert frames["network_stats"].total_packets.sum() == len(pf)
    assert frames["channel_performance"].packets_sent.sum() == len(pf)
    assert frames["network_stats"].successful_packets.sum() == (pf.status == "acknowledged").sum()
    assert frames["relayer_performance"].packets_relayed.sum() == pf.relayer.notna().sum()
    cp = frames["channel_performance"]
    assert cp.congestion_score.between(0, 100).all()
    assert frames["relayer_performance"].reputation_score.between(0, 100).all()


def test_channel_hours_are_exact_across_batches(tiny: tuple[Frames, dict]) -> None:
    frames, _ = tiny  # batches of about 5,000 packets: four batches in the day
    cp = frames["channel_performance"]
    keys = ["chain_id", "channel_id", "hour"]
    assert not cp.duplicated(keys).any()
    pf = frames["packet_flow"]
    sent = (
        pf.assign(hour=pf.created_at.dt.floor("h"))
        .groupby(["source_chain", "source_channel", "hour"])
        .size()
        .rename("n")
        .reset_index()
        .rename(columns={"source_chain": "chain_id", "source_channel": "channel_id"})
    )
    both = cp.merge(sent, on=keys, how="outer")
    assert len(both) == len(cp) and (both.n == both.packets_sent).all()


def test_columns_out_of_contract_are_refused() -> None:
    with pytest.raises(AssertionError, match="network_stats: generated columns"):
        check_columns("network_stats", {"chain_id": [], "date": []})
