"""Incidents planted in the traffic: chain halts, relayer outages, congestion, client expiry.

Each span gets a plan drawn from its own seeded stream (``(seed, 11)``; per-packet draws from
``(seed, 12, hour)``), so the incident-free traffic underneath is the very same as with
``GenerationParams(incidents=False)``, and the plan does not depend on the batch size. The plan is
listed in the manifest (kind, chain, channel, start, end) and stored by the loader.

What each kind does to the packets (modelling choices where public sources give no number):

- ``chain_halt`` (1-3 h: no blocks for an hour or more): the chain makes no blocks, so
  no packet leaves it: the sends drawn for it during the halt go the other way on the same channel
  (its counterparties' users keep sending to it). Packets to it stall: those with a timeout
  timestamp whose deadline passes during the halt time out once it resumes (the first new header is
  past it); height-only ones (its height is frozen) and the last minutes' packets clear in a burst
  at the resume. Acknowledgements and timeouts that must land on the halted chain wait for it.
- ``relayer_outage`` (2-6 h, on a spoke's busiest channel with at least two relayers): the
  channel's busiest relayer (highest skill: it wins most races) stops. The others pick its packets
  up late, at their periodic clear (Hermes clears pending packets every 100 blocks): each waits 1-3
  clear intervals of the sending chain, so many pass the 10-minute timeout; a third are never picked
  up at all (stuck): stuck packets rise, by a share that is a modelling choice.
- ``congestion`` (2-5 h on one chain): full blocks; receive and acknowledgement delays of packets
  from and to the chain are multiplied by a factor that ramps up to 3-8x and back (a sine), so clear
  times, the channels' congestion score and, at the peak, timeouts rise together.
- ``client_expiry`` (3-8 h, a spoke's busiest channel): the spoke's light client of the counterparty
  expired, until it is renewed (a governance substitute: hours here, often days on mainnet). Packets
  to the spoke cannot be received and time out (refunded); packets from it are received but their
  acknowledgements (and timeouts) cannot be proven back on the spoke until the renewal.

How many: one of each kind per started week of the span (at least one of each in any span; tiny,
one day, gets four), on the busiest spokes (never a hub: a halted hub would take every chain down
with it), distinct chains while there are enough. Spans shorter than a week scale the durations
down by their share of a week (to an hour at least). They start after the first hour and end at least
two hours before the span ends, so their aftermath is in the data. With these rates the planted
trouble stays a small share of all packets (a modelling choice: timeouts and stuck packets well
under 1%, and they come in bursts); see ``tests/data_gen/test_incidents.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from data_gen.chains import HUBS

if TYPE_CHECKING:
    from data_gen.network import ChainNetwork

US = 1_000_000
HOUR_US = 3600 * US
KINDS = ("chain_halt", "relayer_outage", "congestion", "client_expiry")
#: hours, low and high, of each kind (modelling choices, see the module docstring)
DURATION_H = {
    "chain_halt": (1.0, 3.0),
    "relayer_outage": (2.0, 6.0),
    "congestion": (2.0, 5.0),
    "client_expiry": (3.0, 8.0),
}
INCIDENTS_PER_WEEK = 1  # of each kind
OUTAGE_STUCK_SHARE = 1 / 3  # packets of the stopped relayer nobody picks up
CLEAR_INTERVAL_BLOCKS = 100  # Hermes' default clear_interval (its configuration reference)
CONGESTION_FACTOR = (3.0, 8.0)
BUSY_SPOKES = 10  # incidents fall on the busiest spokes: enough traffic to see them


@dataclass(frozen=True)
class Incident:
    """One planted incident: the chain it is about, the channel pair (-1: the whole chain), times in µs."""

    kind: str
    chain: int
    pair: int
    relayer: int  # relayer_outage: the stopped relayer, else -1
    start_us: int
    end_us: int
    factor: float = 1.0  # congestion: the peak delay factor

    def describe(self, network: ChainNetwork) -> dict[str, Any]:
        """JSON-ready, as the manifest lists it: names and ISO times instead of indices and µs."""
        t = network
        out: dict[str, Any] = {
            "kind": self.kind,
            "chain_id": t.chains[self.chain].chain_id,
            "channel_id": None,
            "counterparty_chain_id": None,
            "counterparty_channel_id": None,
            "relayer": None,
            "start": _iso(self.start_us),
            "end": _iso(self.end_us),
        }
        if self.pair >= 0:
            a, b = int(t.pair_a[self.pair]), int(t.pair_b[self.pair])
            ca, cb = int(t.pair_channel_a[self.pair]), int(t.pair_channel_b[self.pair])
            if a != self.chain:
                a, b, ca, cb = b, a, cb, ca
            out["channel_id"] = f"channel-{ca}"
            out["counterparty_chain_id"] = t.chains[b].chain_id
            out["counterparty_channel_id"] = f"channel-{cb}"
        if self.relayer >= 0:
            out["relayer"] = str(t.relayer_address[self.relayer])
        if self.kind == "congestion":
            out["peak_delay_factor"] = round(self.factor, 2)
        return out


def _iso(us: int) -> str:
    return str(np.datetime64(int(us), "us").astype("datetime64[s]")) + "+00:00"


def plan_incidents(
    network: ChainNetwork, seed: int, start_us: int, hours: int
) -> tuple[Incident, ...]:
    """The span's incidents, in start order (none for spans under six hours: no room for them)."""
    if hours < 6:
        return ()
    t = network
    rng = np.random.default_rng([seed, 11])
    n_chains = len(t.chains)
    traffic = np.zeros(n_chains)
    np.add.at(traffic, t.route_src, t.route_weight)
    np.add.at(traffic, t.route_dst, t.route_weight)
    spokes = [i for i in np.argsort(-traffic) if t.chains[i].chain_id not in HUBS][:BUSY_SPOKES]
    per_kind = max(1, int(np.ceil(hours / (24 * 7))) * INCIDENTS_PER_WEEK)
    order = rng.permutation(len(spokes))
    relayers_per_pair = (t.pair_relayers >= 0).sum(axis=1)
    pair_weight = np.zeros(t.pair_a.size)
    np.add.at(pair_weight, t.route_pair, t.route_weight)
    incidents: list[Incident] = []
    for i in range(per_kind * len(KINDS)):
        kind = KINDS[i % len(KINDS)]
        chain = int(spokes[order[i % len(spokes)]])
        low, high = DURATION_H[kind]
        # a span shorter than a week gets shorter incidents (an hour at least): four incidents in
        # one day are already four weeks' worth
        length_h = max(1.0, rng.uniform(low, high) * min(1.0, (hours / (24 * 7)) ** 0.5))
        length_h = min(length_h, max(1.0, (hours - 3) / 2))
        begin_h = rng.uniform(1.0, hours - 2.0 - length_h)
        begin = start_us + int(begin_h * HOUR_US)
        end = begin + int(length_h * HOUR_US)
        factor = float(rng.uniform(*CONGESTION_FACTOR))
        pair, relayer = -1, -1
        if kind in ("relayer_outage", "client_expiry"):
            mine = (t.pair_a == chain) | (t.pair_b == chain)
            if kind == "relayer_outage":
                mine &= relayers_per_pair >= 2
            if not mine.any():
                mine = (t.pair_a == chain) | (t.pair_b == chain)
            pair = int(np.flatnonzero(mine)[np.argmax(pair_weight[mine])])
            if kind == "relayer_outage":
                slots = t.pair_relayers[pair]
                slots = slots[slots >= 0]
                relayer = int(slots[np.argmax(t.relayer_skill[slots])])
        incidents.append(Incident(kind, chain, pair, relayer, begin, end, factor))
    return tuple(sorted(incidents, key=lambda x: (x.start_us, x.kind, x.chain)))


def reroute_halted(
    incidents: tuple[Incident, ...],
    network: ChainNetwork,
    op_route: np.ndarray,
    op_time: np.ndarray,
) -> np.ndarray:
    """Sends drawn for a halted chain go the other way on their channel (routes come in pairs)."""
    out = op_route
    for inc in incidents:
        if inc.kind != "chain_halt":
            continue
        hit = (
            (network.route_src[out] == inc.chain)
            & (op_time >= inc.start_us)
            & (op_time < inc.end_us)
        )
        if hit.any():
            out = np.where(hit, out ^ 1, out)
    return out


@dataclass
class Relay:
    """A batch's relay timeline, before the span end cuts it: what incidents change."""

    created: np.ndarray  # µs
    src: np.ndarray
    dst: np.ndarray
    pair: np.ndarray
    recv_s: np.ndarray  # send to receive, seconds (if it is received)
    ack_s: np.ndarray  # receive to acknowledgement on the source, seconds
    timeout_relay: np.ndarray  # µs: when a timeout is relayed to the source
    deadline_s: np.ndarray  # the packet times out when recv_s passes this
    never: np.ndarray  # never relayed (stuck)
    winner_slot: np.ndarray  # the relayer slot (of the pair's) that relays it
    tries: np.ndarray  # n x max_k: slots that also try (and lose)
    use_ts: np.ndarray  # has a timeout timestamp


def apply_incidents(
    incidents: tuple[Incident, ...],
    network: ChainNetwork,
    relay: Relay,
    draws: np.ndarray,
    block_time_s: np.ndarray,
) -> None:
    """Change ``relay`` in place for the incidents it meets. ``draws``: n x 3 uniforms of the
    incident stream (the same for a packet whatever the batch)."""
    t = network
    r = relay
    n = r.created.size
    if n == 0:
        return
    lo, hi = int(r.created.min()), int(r.created.max())
    u1, u2, u3 = draws[:, 0], draws[:, 1], draws[:, 2]
    burst_s = 15.0 + u3 * 240.0  # the backlog clears over a few minutes after a resume/renewal
    for inc in incidents:
        # packets sent up to a day before can still be affected (timeouts, late acks)
        if inc.end_us < lo - 24 * HOUR_US or inc.start_us > hi:
            continue
        s, e = inc.start_us, inc.end_us
        recv_at = r.created + (r.recv_s * US).astype(np.int64)
        ack_at = recv_at + (r.ack_s * US).astype(np.int64)
        resume = e + (burst_s * US).astype(np.int64)
        if inc.kind == "congestion":
            touch = (r.src == inc.chain) | (r.dst == inc.chain)
            inside = touch & (r.created >= s) & (r.created < e)
            phase = np.clip((r.created - s) / max(e - s, 1), 0.0, 1.0)
            f = 1.0 + (inc.factor - 1.0) * np.sin(np.pi * phase)
            r.recv_s = np.where(inside, r.recv_s * f, r.recv_s)
            r.ack_s = np.where(inside, r.ack_s * f, r.ack_s)
            r.timeout_relay = np.where(
                inside, r.timeout_relay + ((f - 1.0) * 30.0 * US).astype(np.int64), r.timeout_relay
            )
        elif inc.kind == "chain_halt":
            to_it = (r.dst == inc.chain) & (recv_at >= s) & (recv_at < e) & ~r.never
            # height-only timeouts: the halted chain's height is frozen, the deadline moves out
            frozen = (e - np.maximum(r.created, s)) / US
            r.deadline_s = np.where(to_it & ~r.use_ts, r.deadline_s + frozen, r.deadline_s)
            r.recv_s = np.where(to_it, (resume - r.created) / US, r.recv_s)
            waits = (r.dst == inc.chain) & (r.timeout_relay >= s) & (r.timeout_relay < e)
            r.timeout_relay = np.where(
                waits | to_it, np.maximum(r.timeout_relay, resume + 30 * US), r.timeout_relay
            )
            from_it = (r.src == inc.chain) & (ack_at >= s) & (ack_at < e)
            r.ack_s = np.where(from_it, (resume - recv_at) / US, r.ack_s)
            tout_home = (r.src == inc.chain) & (r.timeout_relay >= s) & (r.timeout_relay < e)
            r.timeout_relay = np.where(tout_home, resume, r.timeout_relay)
        elif inc.kind == "relayer_outage":
            slots = t.pair_relayers[r.pair]
            mine = (r.pair == inc.pair) & (recv_at >= s) & (recv_at < e)
            own = mine & (slots[np.arange(n), r.winner_slot] == inc.relayer) & ~r.never
            # it does not compete in the outage either
            r.tries = np.where(mine[:, None] & (slots == inc.relayer), False, r.tries)
            lost = own & (u1 < OUTAGE_STUCK_SHARE)
            r.never = r.never | lost
            late = own & ~lost
            intervals = 1.0 + 2.0 * u2
            extra = intervals * CLEAR_INTERVAL_BLOCKS * block_time_s[r.src]
            r.recv_s = np.where(late, r.recv_s + extra, r.recv_s)
            # another relayer of the channel, by skill
            valid = (slots >= 0) & (slots != inc.relayer)
            skill = np.where(valid, t.relayer_skill[np.maximum(slots, 0)], 0.0)
            total = skill.sum(axis=1, keepdims=True)
            cum = np.cumsum(skill, axis=1) / np.where(total > 0, total, 1.0)
            other = np.minimum((u3[:, None] > cum).sum(axis=1), slots.shape[1] - 1)
            has_other = total[:, 0] > 0
            r.winner_slot = np.where(late & has_other, other, r.winner_slot)
            r.tries[np.arange(n), r.winner_slot] = False
        elif inc.kind == "client_expiry":
            mine = r.pair == inc.pair
            to_spoke = mine & (r.dst == inc.chain) & (recv_at >= s) & (recv_at < e)
            r.deadline_s = np.where(to_spoke, -1.0, r.deadline_s)  # cannot be received: times out
            from_spoke = mine & (r.src == inc.chain)
            acks = from_spoke & (ack_at >= s) & (ack_at < e)
            r.ack_s = np.where(acks, (resume - recv_at) / US, r.ack_s)
            touts = from_spoke & (r.timeout_relay >= s) & (r.timeout_relay < e)
            r.timeout_relay = np.where(touts, resume, r.timeout_relay)
