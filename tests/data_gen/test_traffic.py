"""data_gen.traffic: arrivals, the packet lifecycle and sequences."""

from __future__ import annotations

import numpy as np

from data_gen import GenerationParams, build_network
from data_gen.traffic import (
    HOUR_US,
    PauseWindows,
    _paused_until,
    generate_hour_range,
    hourly_packet_counts,
    pause_windows,
)
from tests.data_gen.frames import Frames


def test_hourly_counts_cover_the_span_and_sum_to_the_packets() -> None:
    params = GenerationParams(seed=5, packets=10_000, days=2.0)
    counts = hourly_packet_counts(params, 0)
    assert counts.size == 48 and counts.sum() == 10_000
    assert np.array_equal(counts, hourly_packet_counts(params, 0))


def test_pause_windows_are_sorted_per_pair_and_looked_up_by_send_time() -> None:
    network = build_network(1)
    pauses = pause_windows(network, GenerationParams(seed=1, scale="tiny"), 0, 24)
    assert pauses.pair.size > 0 and (pauses.end > pauses.start).all()
    order = np.lexsort((pauses.start, pauses.pair))
    assert np.array_equal(order, np.arange(pauses.pair.size))
    windows = PauseWindows(np.array([0, 2]), np.array([100, 500]), np.array([200, 900]))
    pair = np.array([0, 0, 0, 2, 1])
    created = np.array([99, 100, 200, 899, 600])
    assert _paused_until(windows, pair, created).tolist() == [0, 200, 0, 900, 0]


def test_hours_without_packets_give_an_empty_batch() -> None:
    network = build_network(1)
    params = GenerationParams(seed=1, scale="tiny")
    next_sequence = np.ones(network.route_src.size, dtype=np.int64)
    empty = PauseWindows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    traffic = generate_hour_range(
        network, params, np.zeros(3, np.int64), 0, 0, 3 * HOUR_US, empty, next_sequence, 1, 1
    )
    assert traffic.n == 0 and traffic.op_id.size == 0
    assert traffic.competitors.shape == (0, network.pair_relayers.shape[1])
    assert (next_sequence == 1).all()


def test_sequences_are_gapless_per_channel_end(tiny: tuple[Frames, dict]) -> None:
    frames, _ = tiny
    pf = frames["packet_flow"]
    for _, group in pf.groupby(["source_chain", "source_port", "source_channel"]):
        seq = group.sort_values("created_at").sequence.to_numpy()
        assert seq[0] == 1
        assert (np.diff(seq) == 1).all()


def test_lifecycle_invariants(tiny: tuple[Frames, dict]) -> None:
    frames, _ = tiny
    pf = frames["packet_flow"]
    recv, ack, created = pf.received_at, pf.acknowledged_at, pf.created_at
    assert (recv.dropna() > created[recv.notna()]).all()
    both = recv.notna() & ack.notna()
    assert (ack[both] >= recv[both]).all()
    assert ((pf.timeout_height > 0) | pf.timeout_timestamp.notna()).all()
    by_status = {s: g for s, g in pf.groupby("status")}
    assert by_status["acknowledged"].acknowledged_at.notna().all()
    assert by_status["timeout"].received_at.isna().all()
    assert (
        by_status["stuck"].received_at.isna().all()
        and by_status["stuck"].acknowledged_at.isna().all()
    )
    share = pf.status.value_counts(normalize=True)
    assert share.get("timeout", 0) + share.get("stuck", 0) < 0.01
    assert share["acknowledged"] > 0.95
    clear = pf.clear_time_seconds.dropna()
    assert 30 < clear.mean() < 120  # a relay-time study measured 55 s on average, log-normal
    assert clear.quantile(0.99) > 4 * clear.median()
