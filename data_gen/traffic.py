"""Packet and operation generation: the IBC lifecycle, vectorized, in time-ordered batches.

A batch covers whole hours (so hourly channel figures are exact within it) and about
``batch_packets`` packets. Every random draw comes from a generator seeded by (seed, purpose, hour),
so the output does not depend on the batch size.

Modelling choices (public figures where there are some: a relay-time study's 55 s log-normal
average, Hermes' default clear interval of 100 blocks, the redundant-relay shares below):
- arrivals: the span's packets spread over minutes with a daily cycle (peak in the UTC afternoon), a
  weekend dip and random bursts; operations are 97% single transfers, 3% batches of 2-5 packets;
- relay: receive delay and ack delay log-normal (means about 23 s and 32 s: 55 s send to ack), 2% of
  packets on a heavy Pareto tail, 1% missed by the relayer's event stream and picked up at Hermes'
  clear interval (100 blocks); channel pauses (every relayer idle) delay everything sent during them;
- outcomes: timeout when the receive comes after the 10-minute timeout, 0.4% error acknowledgements,
  0.15% never relayed (stuck once past the window, pending before);
- relayers race: the winner is drawn by skill among the channel's relayers, each other relayer tries
  too with probability 0.03 and loses (a redundant relay);
- incidents (chain halts, relayer outages, congestion, client expiry: :mod:`data_gen.incidents`)
  change this timeline afterwards, from draws of their own.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields

import numpy as np

from data_gen.chains import revision_number
from data_gen.incidents import Incident, Relay, apply_incidents, reroute_halted
from data_gen.network import ChainNetwork
from data_gen.params import GenerationParams
from data_gen.streams import HourlyRng, seeded_rng

US = 1_000_000
HOUR_US = 3600 * US
TIMEOUT_S = 600.0
#: chance that each other relayer of the channel also submits a packet and loses the race (modelling
#: choice: busy channels see a few percent redundant relays; relayer reports give about 0.2% of
#: Osmosis-bound packets, and 90% in one incident where 97 relayer instances served one chain)
REDUNDANT_TRY_P = 0.03
STATUS = np.array(
    ["pending", "received", "acknowledged", "error", "timeout", "stuck"], dtype=object
)
PENDING, RECEIVED, ACKNOWLEDGED, ERROR, TIMEOUT, STUCK = range(6)
OP_STATUS = np.array(["pending", "completed", "refunded", "failed", "stuck"], dtype=object)


def hourly_packet_counts(params: GenerationParams, start_us: int) -> np.ndarray:
    """How many packets each hour of the span gets: seasonality and bursts, summing to the total."""
    hours = max(1, int(np.ceil(params.span_days * 24)))
    rng = seeded_rng(params.seed, 2)
    hour_of_day = (start_us // HOUR_US + np.arange(hours)) % 24
    day_of_week = (
        (start_us // HOUR_US + np.arange(hours)) // 24 + 3
    ) % 7  # 1970-01-01 was a Thursday
    rate = 1.0 + 0.35 * np.sin(2 * np.pi * (hour_of_day - 9) / 24)
    rate *= np.where(day_of_week >= 5, 0.8, 1.0)
    bursts = rng.random(hours) < 0.04
    rate *= np.where(bursts, rng.uniform(1.8, 3.5, hours), 1.0)
    rate *= rng.lognormal(0.0, 0.08, hours)
    return rng.multinomial(params.total_packets, rate / rate.sum())


@dataclass(frozen=True)
class PauseWindows:
    """Per channel pair, sorted windows during which no relayer serves the channel (µs)."""

    pair: np.ndarray
    start: np.ndarray
    end: np.ndarray


def pause_windows(
    network: ChainNetwork, params: GenerationParams, start_us: int, hours: int
) -> PauseWindows:
    """The span's channel pauses: Poisson per pair at its pause rate, each about 100 blocks long."""
    rng = seeded_rng(params.seed, 3)
    days = hours / 24
    counts = rng.poisson(network.pair_pause_rate_per_day * days)
    pair = np.repeat(np.arange(len(counts)), counts)
    begin = start_us + (rng.random(pair.size) * hours * HOUR_US).astype(np.int64)
    # about 100 blocks of the slower end, stretched 0.5-3x: minutes, sometimes past the 10-minute timeout
    block = np.maximum(
        [network.chains[i].block_time_s for i in network.pair_a[pair]]
        if pair.size
        else np.zeros(0),
        [network.chains[i].block_time_s for i in network.pair_b[pair]]
        if pair.size
        else np.zeros(0),
    )
    length = (100 * np.asarray(block, dtype=float) * rng.uniform(0.5, 3.0, pair.size) * US).astype(
        np.int64
    )
    order = np.lexsort((begin, pair))
    return PauseWindows(pair[order], begin[order], begin[order] + length[order])


@dataclass
class Traffic:
    """One batch of packets (arrays of packet length) and its operations (arrays of op length)."""

    # packets
    packet_id: np.ndarray
    op_index: np.ndarray  # index into the ops arrays
    route: np.ndarray
    wallet: np.ndarray
    receiver_wallet: np.ndarray
    sequence: np.ndarray
    status: np.ndarray
    created_us: np.ndarray
    received_us: np.ndarray  # -1: NULL
    acked_us: np.ndarray  # -1: NULL
    recv_delay_s: np.ndarray
    denom_kind: np.ndarray  # 0 native of source, 1 voucher of destination's token going home
    mantissa: np.ndarray
    exponent: np.ndarray
    usd: np.ndarray
    relayer: np.ndarray  # -1: none
    competitors: np.ndarray  # relayer ids of losing attempts: (n x max_k) -1 padded
    timeout_revision: np.ndarray
    timeout_height: np.ndarray
    timeout_ts_us: np.ndarray  # -1: NULL
    # operations
    op_id: np.ndarray
    op_first: np.ndarray  # index of the op's first packet
    op_size: np.ndarray
    op_fee_mantissa: np.ndarray
    op_fee_exponent: np.ndarray

    @property
    def n(self) -> int:
        return int(self.packet_id.shape[0])


def generate_hour_range(
    network: ChainNetwork,
    params: GenerationParams,
    counts: np.ndarray,
    first_hour: int,
    start_us: int,
    span_end_us: int,
    pauses: PauseWindows,
    next_sequence: np.ndarray,
    next_packet_id: int,
    next_op_id: int,
    incidents: tuple[Incident, ...] = (),
) -> Traffic:
    """Packets of hours ``first_hour .. first_hour + len(counts) - 1`` of the span.

    The phases read top to bottom: arrivals, sends (routes, wallets, amounts), the relay timeline
    and its incidents, outcomes at the span end, the relayer race, timeouts, sequences. Sends and
    relay draw from one hourly stream in that order (the order of the draws is part of the data).
    ``incidents`` (see :mod:`data_gen.incidents`) change the relay timeline; their per-packet draws
    come from a stream of their own, so the traffic without them is the same draw for draw.
    ``next_sequence`` (per route) is advanced past the packets returned.
    """
    arrivals = _arrivals(params.seed, counts, first_hour, start_us)
    if arrivals is None:
        return _empty_traffic(network)
    packets_per_hour = [int(c) for c in counts]
    rng = HourlyRng(params.seed, 5, first_hour, arrivals.ops_per_hour, packets_per_hour)
    sends = _sends(rng, network, arrivals, incidents)
    relay, error, use_height = _relay(rng, network, pauses, sends)
    if incidents:
        draws = HourlyRng(
            params.seed, 12, first_hour, arrivals.ops_per_hour, packets_per_hour
        ).random((sends.n, 3))
        apply_incidents(incidents, network, relay, draws, _block_times(network))
    outcome = _outcomes(relay, error, span_end_us)
    winner, competitors = _race_result(network, relay, outcome)
    timeout_revision, timeout_height, timeout_ts = _timeouts(
        network, sends, use_height, relay.use_ts, start_us
    )
    return Traffic(
        packet_id=next_packet_id + np.arange(sends.n, dtype=np.int64),
        op_index=sends.op_index,
        route=sends.route,
        wallet=sends.op_wallet[sends.op_index],
        receiver_wallet=sends.op_receiver[sends.op_index],
        sequence=_sequences(sends.route, sends.created, next_sequence),
        status=outcome.status,
        created_us=sends.created,
        received_us=outcome.received,
        acked_us=outcome.acked,
        recv_delay_s=relay.recv_s,
        denom_kind=sends.kind,
        mantissa=sends.mantissa,
        exponent=sends.exponent,
        usd=sends.usd,
        relayer=winner,
        competitors=competitors,
        timeout_revision=timeout_revision,
        timeout_height=timeout_height,
        timeout_ts_us=timeout_ts,
        op_id=next_op_id + np.arange(sends.op_size.size, dtype=np.int64),
        op_first=sends.op_first,
        op_size=sends.op_size,
        op_fee_mantissa=sends.op_fee_mantissa,
        op_fee_exponent=sends.op_fee_exponent,
    )


@dataclass(frozen=True)
class Arrivals:
    """When the operations of an hour range start (µs, sorted per hour) and how many packets each
    has; ``ops_per_hour`` splits them by hour (for :class:`HourlyRng`)."""

    op_time: np.ndarray
    op_size: np.ndarray
    ops_per_hour: list[int]


def _arrivals(seed: int, counts: np.ndarray, first_hour: int, start_us: int) -> Arrivals | None:
    """Arrivals and operation grouping, drawn per hour so that batch size does not change the data
    (None: no packets in these hours). 97% single transfers, 3% batches of 2-5 packets."""
    parts_created: list[np.ndarray] = []
    parts_opsize: list[np.ndarray] = []
    ops_per_hour: list[int] = []
    for h, count in enumerate(counts):
        if count == 0:
            ops_per_hour.append(0)
            continue
        hour_rng = seeded_rng(seed, 4, first_hour + h)
        sizes = np.where(hour_rng.random(count) < 0.03, hour_rng.integers(2, 6, count), 1)
        ends = np.cumsum(sizes)
        keep = int(np.searchsorted(ends, count, side="left")) + 1
        sizes = sizes[:keep]
        sizes[-1] -= ends[keep - 1] - count
        op_times = np.sort(hour_rng.integers(0, HOUR_US, sizes.size))
        hour_start = start_us + (first_hour + h) * HOUR_US
        parts_created.append(hour_start + op_times)
        parts_opsize.append(sizes)
        ops_per_hour.append(int(sizes.size))
    if not parts_created:
        return None
    return Arrivals(
        np.concatenate(parts_created), np.concatenate(parts_opsize).astype(np.int64), ops_per_hour
    )


@dataclass(frozen=True)
class Sends:
    """What the users send: operations (``op_*``, op length) and their packets (packet length)."""

    op_size: np.ndarray
    op_first: np.ndarray  # index of the op's first packet
    op_wallet: np.ndarray
    op_receiver: np.ndarray
    op_fee_mantissa: np.ndarray
    op_fee_exponent: np.ndarray
    op_index: np.ndarray  # per packet: index into the ops arrays
    created: np.ndarray  # µs
    route: np.ndarray
    src: np.ndarray  # chain indices
    dst: np.ndarray
    kind: np.ndarray  # 0 native of source, 1 voucher of destination's token going home
    mantissa: np.ndarray  # amount in micro-units of the token
    exponent: np.ndarray
    usd: np.ndarray

    @property
    def n(self) -> int:
        return int(self.op_index.size)


def _sends(
    rng: HourlyRng, network: ChainNetwork, arrivals: Arrivals, incidents: tuple[Incident, ...]
) -> Sends:
    """Routes, wallets, denoms, amounts and fees of the operations, spread over their packets."""
    op_time, op_size = arrivals.op_time, arrivals.op_size
    n_ops = op_size.size
    n = int(op_size.sum())
    op_route = rng.choice(network.route_weight.size, size=n_ops, p=network.route_weight)
    if incidents:
        op_route = reroute_halted(incidents, network, op_route, op_time)
    op_wallet = rng.choice(network.n_wallets, size=n_ops, p=network.wallet_weight)
    # 70% move their own funds (same key on the other chain), 30% pay someone else
    other = rng.choice(network.n_wallets, size=n_ops, p=network.wallet_weight)
    op_receiver = np.where(rng.random(n_ops) < 0.7, op_wallet, other)
    op_kind = (rng.random(n_ops) < 0.3).astype(np.int64)
    src = network.route_src[op_route]
    dst = network.route_dst[op_route]
    # noble's own token is USDC; a voucher going home to noble is USDC too
    op_fee_usd = rng.uniform(0.002, 0.03, n_ops)

    op_index = np.repeat(np.arange(n_ops), op_size)
    op_first = np.concatenate([[0], np.cumsum(op_size)[:-1]])
    within = np.arange(n) - op_first[op_index]
    kind = op_kind[op_index]
    token_chain = np.where(kind == 0, src[op_index], dst[op_index])

    price = np.array([c.price_usd for c in network.chains])
    decimals = np.array([c.decimals for c in network.chains])
    usd = np.minimum(rng.lognormal(np.log(120.0), 1.8, n), 5_000_000.0)
    micro = np.maximum(1, np.round(usd / price[token_chain] * 1e6)).astype(np.int64)
    return Sends(
        op_size=op_size,
        op_first=op_first,
        op_wallet=op_wallet,
        op_receiver=op_receiver,
        op_fee_mantissa=np.maximum(1, np.round(op_fee_usd / price[src] * 1e6)).astype(np.int64),
        op_fee_exponent=(decimals[src] - 6).astype(np.int64),
        op_index=op_index,
        created=op_time[op_index] + within * 1_000,  # batch packets 1 ms apart
        route=op_route[op_index],
        src=src[op_index],
        dst=dst[op_index],
        kind=kind,
        mantissa=micro,
        exponent=(decimals[token_chain] - 6).astype(np.int64),
        usd=micro / 1e6 * price[token_chain],
    )


def _relay(
    rng: HourlyRng, network: ChainNetwork, pauses: PauseWindows, sends: Sends
) -> tuple[Relay, np.ndarray, np.ndarray]:
    """The relay timeline before incidents and the span end, and per packet: whether its
    acknowledgement is an error, whether it has a timeout height."""
    n = sends.n
    created = sends.created
    recv_delay = rng.lognormal(np.log(18.0), 0.75, n)
    ack_delay = rng.lognormal(np.log(24.0), 0.8, n)
    tail = rng.random(n) < 0.02
    recv_delay = np.where(tail, recv_delay * (1 + rng.pareto(1.5, n) * 3), recv_delay)
    block_src = _block_times(network)[sends.src]
    missed = rng.random(n) < 0.01
    recv_delay = recv_delay + np.where(missed, rng.uniform(0, 100, n) * block_src, 0.0)
    pair = network.route_pair[sends.route]
    paused_until = _paused_until(pauses, pair, created)
    recv_delay = recv_delay + np.where(paused_until > 0, (paused_until - created) / US, 0.0)

    error = rng.random(n) < 0.004
    never = rng.random(n) < 0.0015
    timeout_relay = (
        created + int(TIMEOUT_S * US) + (rng.lognormal(np.log(30.0), 0.6, n) * US).astype(np.int64)
    )
    # the relayer race and the timeout kind are drawn here, in the order they always were drawn
    slots = network.pair_relayers[pair]  # n x max_k
    valid = slots >= 0
    skill = np.where(valid, network.relayer_skill[np.maximum(slots, 0)], 0.0)
    cum = np.cumsum(skill, axis=1) / skill.sum(axis=1, keepdims=True)
    winner_slot = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), valid.sum(axis=1) - 1)
    tries = valid & (rng.random(slots.shape) < REDUNDANT_TRY_P)
    tries[np.arange(n), winner_slot] = False
    choice = rng.random(n)
    relay = Relay(
        created,
        sends.src,
        sends.dst,
        pair,
        recv_delay,
        ack_delay,
        timeout_relay,
        np.full(n, TIMEOUT_S),
        never,
        winner_slot,
        tries,
        use_ts=choice < 0.85,
    )
    return relay, error, choice >= 0.80


@dataclass(frozen=True)
class Outcome:
    """Per packet at the span end: its status code and when it was received and acknowledged (or
    its timeout relayed) in µs, -1 for not (yet)."""

    status: np.ndarray
    received: np.ndarray
    acked: np.ndarray


def _outcomes(relay: Relay, error: np.ndarray, span_end_us: int) -> Outcome:
    """Statuses from the timeline: a timeout when the receive comes after the deadline, stuck when
    never relayed; what had not happened by the span end is still pending or received."""
    created, never = relay.created, relay.never
    timed_out = (relay.recv_s > relay.deadline_s) & ~never
    received = created + (relay.recv_s * US).astype(np.int64)
    acked = received + (relay.ack_s * US).astype(np.int64)

    status = np.full(created.size, ACKNOWLEDGED, dtype=np.int64)
    status[error] = ERROR
    status[timed_out] = TIMEOUT
    status[never] = STUCK
    received = np.where(timed_out | never, -1, received)
    acked = np.where(timed_out, relay.timeout_relay, np.where(never, -1, acked))
    late_never = never & (created > span_end_us - HOUR_US)
    status[late_never] = PENDING
    not_recv_yet = (received > span_end_us) & ~timed_out & ~never
    status[not_recv_yet] = PENDING
    received[not_recv_yet] = -1
    acked[not_recv_yet] = -1
    not_acked_yet = (acked > span_end_us) & (received >= 0)
    status[not_acked_yet] = RECEIVED
    acked[not_acked_yet] = -1
    timeout_pending = timed_out & (acked > span_end_us)
    status[timeout_pending] = PENDING
    acked[timeout_pending] = -1
    return Outcome(status, received, acked)


def _race_result(
    network: ChainNetwork, relay: Relay, outcome: Outcome
) -> tuple[np.ndarray, np.ndarray]:
    """The relayer that delivered each packet (-1: none yet) and the ones that tried and lost
    (n x max_k, -1 padded)."""
    slots = network.pair_relayers[relay.pair]
    n = slots.shape[0]
    winner = slots[np.arange(n), relay.winner_slot]
    relayed = (outcome.received >= 0) | ((outcome.status == TIMEOUT) & (outcome.acked >= 0))
    winner = np.where(relayed, winner, -1)
    competitors = np.where(relay.tries & relayed[:, None], slots, -1)
    return winner, competitors


def _timeouts(
    network: ChainNetwork,
    sends: Sends,
    use_height: np.ndarray,
    use_ts: np.ndarray,
    start_us: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Timeout revision, height (0: none) and timestamp (µs, -1: none) of each packet: a timestamp
    (most), a height only, or both, each 10 minutes ahead on the destination."""
    created, dst_p = sends.created, sends.dst
    block_dst = _block_times(network)[dst_p]
    base_height = (
        np.array([zlib.crc32(c.chain_id.encode()) % 7_919 for c in network.chains]) * 2_500
        + 5_000_000
    )[dst_p]
    height_now = base_height + ((created - start_us) / US / block_dst).astype(np.int64)
    revisions = np.array([revision_number(c.chain_id) for c in network.chains])[dst_p]
    timeout_height = np.where(
        use_height, height_now + np.ceil(TIMEOUT_S / block_dst).astype(np.int64), 0
    )
    timeout_revision = np.where(use_height, revisions, 0)
    timeout_ts = np.where(use_ts, created + int(TIMEOUT_S * US), -1)
    return timeout_revision.astype(np.int64), timeout_height.astype(np.int64), timeout_ts


def _sequences(route: np.ndarray, created: np.ndarray, next_sequence: np.ndarray) -> np.ndarray:
    """Packet sequences per sending channel end, gapless, in created order; advances
    ``next_sequence`` (per route) past them."""
    n = route.size
    order = np.lexsort((created, route))
    sorted_route = route[order]
    boundaries = np.r_[0, np.flatnonzero(np.diff(sorted_route)) + 1]
    starts = np.repeat(boundaries, np.diff(np.r_[boundaries, n]))
    rank = np.arange(n) - starts
    sequence = np.empty(n, dtype=np.int64)
    sequence[order] = next_sequence[sorted_route] + rank
    np.add.at(next_sequence, route, 1)
    return sequence


def _block_times(network: ChainNetwork) -> np.ndarray:
    """Seconds per block of each chain, by chain index."""
    return np.array([c.block_time_s for c in network.chains])


def _paused_until(pauses: PauseWindows, pair: np.ndarray, created: np.ndarray) -> np.ndarray:
    """For each packet, the end of the pause its channel is in when it is sent (0: not paused)."""
    if pauses.pair.size == 0:
        return np.zeros(created.size, dtype=np.int64)
    big = np.int64(1) << 52
    keys = pauses.pair.astype(np.int64) * big + pauses.start
    probe = pair.astype(np.int64) * big + created
    idx = np.searchsorted(keys, probe, side="right") - 1
    ok = idx >= 0
    idx = np.maximum(idx, 0)
    inside = ok & (pauses.pair[idx] == pair) & (created < pauses.end[idx])
    return np.where(inside, pauses.end[idx], 0)


def _empty_traffic(network: ChainNetwork) -> Traffic:
    """A batch of no packets (hours without any), with the arrays' dtypes and shapes."""
    empty = {f.name: np.zeros(0, dtype=np.int64) for f in fields(Traffic)}
    empty["recv_delay_s"] = np.zeros(0, dtype=float)
    empty["usd"] = np.zeros(0, dtype=float)
    empty["competitors"] = np.zeros((0, network.pair_relayers.shape[1]), dtype=np.int64)
    return Traffic(**empty)
