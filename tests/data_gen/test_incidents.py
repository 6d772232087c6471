"""data_gen.incidents: planted chain halts, relayer outages, congestion and client expiry change
the outcomes the way the module says, and leave the traffic underneath alone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_gen import build_network
from data_gen.incidents import KINDS, Incident, plan_incidents, reroute_halted
from tests.data_gen.frames import Frames


def _window(inc: dict) -> tuple[pd.Timestamp, pd.Timestamp]:
    return (
        pd.Timestamp(inc["start"]).tz_localize(None),
        pd.Timestamp(inc["end"]).tz_localize(None),
    )


def _incident(manifest: dict, kind: str) -> dict:
    return next(i for i in manifest["incidents"] if i["kind"] == kind)


def test_the_manifest_lists_one_incident_of_each_kind_per_week(
    tiny: tuple[Frames, dict], incident_free: tuple[Frames, dict]
) -> None:
    _, manifest = tiny
    required = {
        "kind",
        "chain_id",
        "channel_id",
        "counterparty_chain_id",
        "counterparty_channel_id",
        "relayer",
        "start",
        "end",
    }
    assert all(required <= set(i) for i in manifest["incidents"])
    kinds = sorted(i["kind"] for i in manifest["incidents"])
    assert kinds == ["chain_halt", "client_expiry", "congestion", "relayer_outage"]
    for inc in manifest["incidents"]:
        start, end = _window(inc)
        assert end - start >= pd.Timedelta(hours=1)
        assert inc["chain_id"] not in ("osmosis-1", "noble-1", "cosmoshub-4", "neutron-1")
    assert manifest["params"]["incidents"] is True
    # the incident-free manifest is the one from before incidents existed
    assert "incidents" not in incident_free[1] and "incidents" not in incident_free[1]["params"]


def test_incidents_change_outcomes_not_the_traffic_underneath(
    tiny: tuple[Frames, dict], incident_free: tuple[Frames, dict]
) -> None:
    frames, _ = tiny
    base, _ = incident_free
    pf, pf0 = frames["packet_flow"], base["packet_flow"]
    assert len(pf) == len(pf0)
    assert (pf.created_at.to_numpy() == pf0.created_at.to_numpy()).all()
    changed = (pf.status.to_numpy() != pf0.status.to_numpy()).mean()
    assert 0 < changed < 0.01


def test_a_halted_chain_sends_nothing_and_what_is_sent_to_it_times_out_or_clears_late(
    tiny: tuple[Frames, dict],
) -> None:
    frames, manifest = tiny
    inc = _incident(manifest, "chain_halt")
    start, end = _window(inc)
    pf = frames["packet_flow"]
    during = (pf.created_at >= start) & (pf.created_at < end)
    assert not (during & (pf.source_chain == inc["chain_id"])).any()
    to_it = pf[during & (pf.destination_chain == inc["chain_id"])]
    assert len(to_it) > 0
    # nothing is received while it makes no blocks
    recv = to_it.received_at.dropna()
    assert (recv >= end).all()
    early = to_it[
        (to_it.created_at < end - pd.Timedelta(minutes=11)) & to_it.timeout_timestamp.notna()
    ]
    assert len(early) and (early.status.isin(["timeout", "stuck", "error"])).all()
    assert (early.status == "timeout").mean() > 0.9


def test_a_stopped_relayer_relays_nothing_and_its_packets_come_late_or_stick(
    tiny: tuple[Frames, dict], incident_free: tuple[Frames, dict]
) -> None:
    frames, manifest = tiny
    inc = _incident(manifest, "relayer_outage")
    start, end = _window(inc)
    pf, pf0 = frames["packet_flow"], incident_free[0]["packet_flow"]
    on_channel = (
        (pf.source_chain == inc["chain_id"]) & (pf.source_channel == inc["channel_id"])
    ) | ((pf.destination_chain == inc["chain_id"]) & (pf.destination_channel == inc["channel_id"]))
    relayed_at = pf.received_at.fillna(pf.acknowledged_at)
    inside = on_channel & (relayed_at >= start) & (relayed_at < end)
    assert not (inside & (pf.relayer == inc["relayer"])).any()
    theirs = (
        on_channel
        & (pf0.relayer == inc["relayer"])
        & (pf0.received_at >= start)
        & (pf0.received_at < end)
    )
    assert theirs.sum() > 0
    assert (pf.status[theirs] == "stuck").sum() > (pf0.status[theirs] == "stuck").sum()
    assert pf.clear_time_seconds[theirs].mean() > 2 * pf0.clear_time_seconds[theirs].mean()


def test_congestion_raises_clear_times_and_the_congestion_score_together(
    tiny: tuple[Frames, dict], incident_free: tuple[Frames, dict]
) -> None:
    frames, manifest = tiny
    inc = _incident(manifest, "congestion")
    start, end = _window(inc)
    keys = ["chain_id", "channel_id", "hour"]
    both = frames["channel_performance"].merge(
        incident_free[0]["channel_performance"], on=keys, suffixes=("", "_before")
    )
    sel = both[
        (both.chain_id == inc["chain_id"]) & (both.hour >= start.floor("h")) & (both.hour < end)
    ]
    assert len(sel) > 0
    assert (
        sel.congestion_score.astype(float).mean() > sel.congestion_score_before.astype(float).mean()
    )
    assert sel.avg_clear_time_seconds.mean() > 1.5 * sel.avg_clear_time_seconds_before.mean()


def test_an_expired_client_lets_nothing_in_until_it_is_renewed(tiny: tuple[Frames, dict]) -> None:
    frames, manifest = tiny
    inc = _incident(manifest, "client_expiry")
    start, end = _window(inc)
    pf = frames["packet_flow"]
    to_spoke = (pf.destination_chain == inc["chain_id"]) & (
        pf.destination_channel == inc["channel_id"]
    )
    assert not (to_spoke & (pf.received_at >= start) & (pf.received_at < end)).any()
    from_spoke = (pf.source_chain == inc["chain_id"]) & (pf.source_channel == inc["channel_id"])
    acked = pf.acknowledged_at[from_spoke]
    assert not ((acked >= start) & (acked < end)).any()


def test_spans_under_six_hours_get_no_incidents() -> None:
    network = build_network(42)
    assert plan_incidents(network, 42, 0, 5) == ()
    assert len(plan_incidents(network, 42, 0, 6)) == len(KINDS)


def test_sends_of_a_halted_chain_go_the_other_way_only_during_the_halt() -> None:
    network = build_network(42)
    route = 0  # a->b; route 1 is b->a on the same channel
    chain = int(network.route_src[route])
    halt = Incident("chain_halt", chain, -1, -1, 1_000, 2_000)
    op_route = np.array([route, route, route, 1])
    op_time = np.array([999, 1_000, 2_000, 1_500])
    assert reroute_halted((halt,), network, op_route, op_time).tolist() == [0, 1, 0, 1]
