"""Packet and operation generation: the IBC lifecycle, vectorized, in time-ordered batches.

A batch covers whole hours (so hourly channel figures are exact within it) and about
``batch_packets`` packets. Every random draw comes from a generator seeded by (seed, purpose, hour),
so the output does not depend on the batch size.

Modelling choices (from the shared IBC facts where measured):
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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from data_gen.chains import revision_number
from data_gen.columns import ScaledInt
from data_gen.incidents import Incident, Relay, apply_incidents, reroute_halted
from data_gen.params import GenerationParams
from data_gen.topology import Topology, voucher_denom

US = 1_000_000
HOUR_US = 3600 * US
TIMEOUT_S = 600.0
#: chance that each other relayer of the channel also submits a packet and loses the race (modelling
#: choice: busy channels see a few percent redundant relays; the facts cite 0.2% to Osmosis, 90% in one incident)
REDUNDANT_TRY_P = 0.03
STATUS = np.array(
    ["pending", "received", "acknowledged", "error", "timeout", "stuck"], dtype=object
)
PENDING, RECEIVED, ACKNOWLEDGED, ERROR, TIMEOUT, STUCK = range(6)
OP_STATUS = np.array(["pending", "completed", "refunded", "failed", "stuck"], dtype=object)
EPOCH = np.datetime64("1970-01-01T00:00:00", "us")


def _rng(seed: int, purpose: int, hour: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, purpose, hour])


def hourly_packet_counts(params: GenerationParams, start_us: int) -> np.ndarray:
    """How many packets each hour of the span gets: seasonality and bursts, summing to the total."""
    hours = max(1, int(np.ceil(params.span_days * 24)))
    rng = _rng(params.seed, 2)
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
    topology: Topology, params: GenerationParams, start_us: int, hours: int
) -> PauseWindows:
    rng = _rng(params.seed, 3)
    days = hours / 24
    counts = rng.poisson(topology.pair_pause_rate_per_day * days)
    pair = np.repeat(np.arange(len(counts)), counts)
    begin = start_us + (rng.random(pair.size) * hours * HOUR_US).astype(np.int64)
    # about 100 blocks of the slower end, stretched 0.5-3x: minutes, sometimes past the 10-minute timeout
    block = np.maximum(
        [topology.chains[i].block_time_s for i in topology.pair_a[pair]]
        if pair.size
        else np.zeros(0),
        [topology.chains[i].block_time_s for i in topology.pair_b[pair]]
        if pair.size
        else np.zeros(0),
    )
    length = (100 * np.asarray(block, dtype=float) * rng.uniform(0.5, 3.0, pair.size) * US).astype(
        np.int64
    )
    order = np.lexsort((begin, pair))
    return PauseWindows(pair[order], begin[order], begin[order] + length[order])


class HourlyRng:
    """Draws as if from one generator, but each hour's share comes from that hour's own stream.

    A draw of ``n`` values is split by hour (by operations or by packets, whichever sums to ``n``), so
    the values an hour gets do not depend on which batch the hour falls in.
    """

    def __init__(
        self, seed: int, purpose: int, first_hour: int, ops: list[int], packets: list[int]
    ) -> None:
        self._gens = [_rng(seed, purpose, first_hour + h) for h in range(len(packets))]
        self._split = {sum(packets): packets, sum(ops): ops}

    def _draw(self, n: int, draw: Any) -> np.ndarray:
        counts = self._split[n]
        parts = [draw(g, c) for g, c in zip(self._gens, counts, strict=True) if c]
        return np.concatenate(parts) if parts else np.zeros(0)

    def random(self, size: int | tuple[int, int]) -> np.ndarray:
        if isinstance(size, tuple):
            return self._draw(size[0], lambda g, c: g.random((c, size[1])))
        return self._draw(size, lambda g, c: g.random(c))

    def choice(self, a: int, size: int, p: np.ndarray) -> np.ndarray:
        """``Generator.choice(a, size, p=p)`` hour by hour, the same draws: numpy's own method
        (uniforms searched in the normalized cumulative sum), with the sum taken once, not per hour."""
        if p.shape != (a,):
            raise ValueError("p must have one weight per choice")
        cdf = p.cumsum()
        cdf /= cdf[-1]
        return self._draw(size, lambda g, c: cdf.searchsorted(g.random(c), side="right"))

    def lognormal(self, mean: float, sigma: float, size: int) -> np.ndarray:
        return self._draw(size, lambda g, c: g.lognormal(mean, sigma, c))

    def uniform(self, low: float, high: float, size: int) -> np.ndarray:
        return self._draw(size, lambda g, c: g.uniform(low, high, c))

    def pareto(self, a: float, size: int) -> np.ndarray:
        return self._draw(size, lambda g, c: g.pareto(a, c))


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
    topology: Topology,
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

    ``incidents`` (see :mod:`data_gen.incidents`) change the relay timeline; their per-packet draws
    come from a stream of their own, so the traffic without them is the same draw for draw.
    """
    seed = params.seed
    parts_created: list[np.ndarray] = []
    parts_opsize: list[np.ndarray] = []
    ops_per_hour: list[int] = []
    # arrivals and operation grouping, drawn per hour so that batch size does not change the data
    for h, count in enumerate(counts):
        if count == 0:
            ops_per_hour.append(0)
            continue
        hour_rng = _rng(seed, 4, first_hour + h)
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
        return _empty_traffic(topology)
    op_time = np.concatenate(parts_created)
    op_size = np.concatenate(parts_opsize).astype(np.int64)
    n_ops = op_size.size
    n = int(op_size.sum())

    rng = HourlyRng(seed, 5, first_hour, ops_per_hour, [int(c) for c in counts])
    op_route = rng.choice(topology.route_weight.size, size=n_ops, p=topology.route_weight)
    if incidents:
        op_route = reroute_halted(incidents, topology, op_route, op_time)
    op_wallet = rng.choice(topology.n_wallets, size=n_ops, p=topology.wallet_weight)
    # 70% move their own funds (same key on the other chain), 30% pay someone else
    other = rng.choice(topology.n_wallets, size=n_ops, p=topology.wallet_weight)
    op_receiver = np.where(rng.random(n_ops) < 0.7, op_wallet, other)
    op_kind = (rng.random(n_ops) < 0.3).astype(np.int64)
    src = topology.route_src[op_route]
    dst = topology.route_dst[op_route]
    # noble's own token is USDC; a voucher going home to noble is USDC too
    op_fee_usd = rng.uniform(0.002, 0.03, n_ops)

    op_index = np.repeat(np.arange(n_ops), op_size)
    op_first = np.concatenate([[0], np.cumsum(op_size)[:-1]])
    within = np.arange(n) - op_first[op_index]
    created = op_time[op_index] + within * 1_000  # batch packets 1 ms apart
    route = op_route[op_index]
    kind = op_kind[op_index]
    token_chain = np.where(kind == 0, src[op_index], dst[op_index])

    price = np.array([c.price_usd for c in topology.chains])
    decimals = np.array([c.decimals for c in topology.chains])
    usd = np.minimum(rng.lognormal(np.log(120.0), 1.8, n), 5_000_000.0)
    micro = np.maximum(1, np.round(usd / price[token_chain] * 1e6)).astype(np.int64)
    exponent = (decimals[token_chain] - 6).astype(np.int64)
    usd = micro / 1e6 * price[token_chain]
    fee_micro = np.maximum(1, np.round(op_fee_usd / price[src] * 1e6)).astype(np.int64)
    fee_exponent = (decimals[src] - 6).astype(np.int64)

    # ---- relay timing ----
    recv_delay = rng.lognormal(np.log(18.0), 0.75, n)
    ack_delay = rng.lognormal(np.log(24.0), 0.8, n)
    tail = rng.random(n) < 0.02
    recv_delay = np.where(tail, recv_delay * (1 + rng.pareto(1.5, n) * 3), recv_delay)
    block_src = np.array([c.block_time_s for c in topology.chains])[src[op_index]]
    missed = rng.random(n) < 0.01
    recv_delay = recv_delay + np.where(missed, rng.uniform(0, 100, n) * block_src, 0.0)
    pair = topology.route_pair[route]
    paused_until = _paused_until(pauses, pair, created)
    pause_extra = np.where(paused_until > 0, (paused_until - created) / US, 0.0)
    recv_delay = recv_delay + pause_extra

    error = rng.random(n) < 0.004
    never = rng.random(n) < 0.0015
    timeout_relay = (
        created + int(TIMEOUT_S * US) + (rng.lognormal(np.log(30.0), 0.6, n) * US).astype(np.int64)
    )
    # the relayer race and the timeout kind are drawn here, in the order they always were drawn
    slots = topology.pair_relayers[pair]  # n x max_k
    valid = slots >= 0
    skill = np.where(valid, topology.relayer_skill[np.maximum(slots, 0)], 0.0)
    cum = np.cumsum(skill, axis=1) / skill.sum(axis=1, keepdims=True)
    winner_slot = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), valid.sum(axis=1) - 1)
    tries = valid & (rng.random(slots.shape) < REDUNDANT_TRY_P)
    tries[np.arange(n), winner_slot] = False
    choice = rng.random(n)
    use_ts = choice < 0.85
    use_height = choice >= 0.80
    deadline = np.full(n, TIMEOUT_S)
    if incidents:
        relay = Relay(
            created,
            src[op_index],
            dst[op_index],
            pair,
            recv_delay,
            ack_delay,
            timeout_relay,
            deadline,
            never,
            winner_slot,
            tries,
            use_ts,
        )
        draws = HourlyRng(seed, 12, first_hour, ops_per_hour, [int(c) for c in counts]).random(
            (n, 3)
        )
        apply_incidents(incidents, topology, relay, draws, _block_times(topology))
        recv_delay, ack_delay, timeout_relay = relay.recv_s, relay.ack_s, relay.timeout_relay
        deadline, never, winner_slot, tries = (
            relay.deadline_s,
            relay.never,
            relay.winner_slot,
            relay.tries,
        )
    timed_out = (recv_delay > deadline) & ~never
    received = created + (recv_delay * US).astype(np.int64)
    acked = received + (ack_delay * US).astype(np.int64)

    status = np.full(n, ACKNOWLEDGED, dtype=np.int64)
    status[error] = ERROR
    status[timed_out] = TIMEOUT
    status[never] = STUCK
    received = np.where(timed_out | never, -1, received)
    acked = np.where(timed_out, timeout_relay, np.where(never, -1, acked))
    # the span ends: what had not happened yet is still pending or received
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

    # ---- relayer race ----
    winner = slots[np.arange(n), winner_slot]
    relayed = (received >= 0) | ((status == TIMEOUT) & (acked >= 0))
    winner = np.where(relayed, winner, -1)
    competitors = np.where(tries & relayed[:, None], slots, -1)

    # ---- timeouts: timestamp (most), height only, or both ----
    dst_p = dst[op_index]
    block_dst = np.array([c.block_time_s for c in topology.chains])[dst_p]
    base_height = (
        np.array([zlib.crc32(c.chain_id.encode()) % 7_919 for c in topology.chains]) * 2_500
        + 5_000_000
    )[dst_p]
    height_now = base_height + ((created - start_us) / US / block_dst).astype(np.int64)
    revisions = np.array([revision_number(c.chain_id) for c in topology.chains])[dst_p]
    timeout_height = np.where(
        use_height, height_now + np.ceil(TIMEOUT_S / block_dst).astype(np.int64), 0
    )
    timeout_revision = np.where(use_height, revisions, 0)
    timeout_ts = np.where(use_ts, created + int(TIMEOUT_S * US), -1)

    # ---- sequences: per sending channel end, gapless, in created order ----
    order = np.lexsort((created, route))
    sorted_route = route[order]
    boundaries = np.r_[0, np.flatnonzero(np.diff(sorted_route)) + 1]
    starts = np.repeat(boundaries, np.diff(np.r_[boundaries, n]))
    rank = np.arange(n) - starts
    sequence = np.empty(n, dtype=np.int64)
    sequence[order] = next_sequence[sorted_route] + rank
    np.add.at(next_sequence, route, 1)

    return Traffic(
        packet_id=next_packet_id + np.arange(n, dtype=np.int64),
        op_index=op_index,
        route=route,
        wallet=op_wallet[op_index],
        receiver_wallet=op_receiver[op_index],
        sequence=sequence,
        status=status,
        created_us=created,
        received_us=received,
        acked_us=acked,
        recv_delay_s=recv_delay,
        denom_kind=kind,
        mantissa=micro,
        exponent=exponent,
        usd=usd,
        relayer=winner,
        competitors=competitors,
        timeout_revision=timeout_revision.astype(np.int64),
        timeout_height=timeout_height.astype(np.int64),
        timeout_ts_us=timeout_ts,
        op_id=next_op_id + np.arange(n_ops, dtype=np.int64),
        op_first=op_first,
        op_size=op_size,
        op_fee_mantissa=fee_micro,
        op_fee_exponent=fee_exponent,
    )


def _block_times(topology: Topology) -> np.ndarray:
    return np.array([c.block_time_s for c in topology.chains])


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


def _empty_traffic(topology: Topology) -> Traffic:
    e = np.zeros(0, dtype=np.int64)
    f = np.zeros(0, dtype=float)
    k = topology.pair_relayers.shape[1]
    return Traffic(
        e,
        e,
        e,
        e,
        e,
        e,
        e,
        e,
        e,
        e,
        f,
        e,
        e,
        e,
        f,
        e,
        np.zeros((0, k), dtype=np.int64),
        e,
        e,
        e,
        e,
        e,
        e,
        e,
        e,
    )


# ---- turning traffic into the tables' columns ------------------------------------------------
def _ts(us: np.ndarray) -> np.ndarray:
    out = us.astype("datetime64[us]")
    out[us < 0] = np.datetime64("NaT")
    return out


def _categorical(values: np.ndarray) -> pd.Categorical:
    codes, uniques = pd.factorize(values, sort=True)
    return pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype=object))


def _from_vocab(codes: np.ndarray, vocab: np.ndarray) -> pd.Categorical:
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
    """Strings the tables repeat, built once per topology: chain ids, channels, denoms, addresses."""

    def __init__(self, topology: Topology) -> None:
        t = topology
        self.topology = t
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
        n_wallets = self.topology.n_wallets
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
                known[missing] = self.topology.wallet_addresses(chain, missing)
                filled[missing] = True
                self._cached += missing.size
            strings[lo:hi] = known[wallets]
        # categories in key order (chain, wallet): unique strings, no sort of strings needed
        return pd.Categorical.from_codes(inverse, categories=pd.Index(strings, dtype=object))


def packet_columns(tr: Traffic, vocab: Vocabulary) -> dict[str, object]:
    t = vocab.topology
    src = t.route_src[tr.route]
    dst = t.route_dst[tr.route]
    denom = np.where(
        tr.denom_kind == 0, vocab.route_native[tr.route], vocab.route_voucher[tr.route]
    )
    created = _ts(tr.created_us)
    acked = _ts(tr.acked_us)
    received = _ts(tr.received_us)
    updated_us = np.where(
        tr.acked_us >= 0, tr.acked_us, np.where(tr.received_us >= 0, tr.received_us, tr.created_us)
    )
    clear = np.where(tr.acked_us >= 0, (tr.acked_us - tr.created_us) / US, np.nan)
    port = pd.Categorical.from_codes(
        np.zeros(tr.n, dtype=np.int64), categories=pd.Index(["transfer"], dtype=object)
    )
    return {
        "id": tr.packet_id,
        "operation_id": tr.op_id[tr.op_index],
        "source_chain": _from_vocab(src, vocab.chain_ids),
        "destination_chain": _from_vocab(dst, vocab.chain_ids),
        "source_port": port,
        "source_channel": _from_vocab(t.route_src_channel[tr.route], vocab.channel),
        "destination_port": port.copy(),
        "destination_channel": _from_vocab(t.route_dst_channel[tr.route], vocab.channel),
        "sequence": tr.sequence,
        "status": _from_vocab(tr.status, STATUS),
        "sender": vocab.addresses(src, tr.wallet),
        "receiver": vocab.addresses(dst, tr.receiver_wallet),
        "amount": ScaledInt(tr.mantissa, tr.exponent),
        "denom": _categorical(denom),
        "relayer": _from_vocab(tr.relayer, t.relayer_address),
        "timeout_revision": tr.timeout_revision,
        "timeout_height": tr.timeout_height,
        "timeout_timestamp": _ts(tr.timeout_ts_us),
        "received_at": received,
        "acknowledged_at": acked,
        "clear_time_seconds": clear,
        "created_at": created,
        "updated_at": _ts(updated_us),
    }


def operation_status(tr: Traffic) -> np.ndarray:
    """Per operation: stuck > pending > refunded > completed (the worst of its packets)."""
    s = tr.status
    rank = np.select(
        [s == STUCK, (s == PENDING) | (s == RECEIVED), (s == ERROR) | (s == TIMEOUT)],
        [4, 3, 2],
        default=1,
    )
    worst = np.zeros(tr.op_id.size, dtype=np.int64)
    np.maximum.at(worst, tr.op_index, rank)
    # OP_STATUS: 0 pending, 1 completed, 2 refunded, 3 failed, 4 stuck
    return np.select([worst == 4, worst == 3, worst == 2], [4, 0, 2], default=1)


def operation_columns(tr: Traffic, vocab: Vocabulary) -> dict[str, object]:
    t = vocab.topology
    first = tr.op_first
    route = tr.route[first]
    src = t.route_src[route]
    dst = t.route_dst[route]
    amount_mantissa = np.zeros(tr.op_id.size, dtype=np.int64)
    np.add.at(amount_mantissa, tr.op_index, tr.mantissa)
    usd = np.zeros(tr.op_id.size)
    np.add.at(usd, tr.op_index, tr.usd)
    status = operation_status(tr)
    last_ack = np.full(tr.op_id.size, -1, dtype=np.int64)
    np.maximum.at(last_ack, tr.op_index, tr.acked_us)
    done = (status == 1) | (status == 2)
    completed = np.where(done, last_ack, -1)
    created = tr.created_us[first]
    denom = np.where(
        tr.denom_kind[first] == 0, vocab.route_native[route], vocab.route_voucher[route]
    )
    op_type = np.where(tr.op_size > 1, 1, 0)
    return {
        "id": tr.op_id,
        "wallet_address": vocab.addresses(src, tr.wallet[first]),
        "operation_type": _from_vocab(
            op_type, np.array(["transfer", "batch_transfer"], dtype=object)
        ),
        "source_chain": _from_vocab(src, vocab.chain_ids),
        "destination_chain": _from_vocab(dst, vocab.chain_ids),
        "channel_id": _from_vocab(t.route_src_channel[route], vocab.channel),
        "sequence": tr.sequence[first],
        "packet_count": tr.op_size,
        "amount": ScaledInt(amount_mantissa, tr.exponent[first]),
        "denom": _categorical(denom),
        "amount_usd": np.round(usd, 2),
        "status": _from_vocab(status, OP_STATUS),
        "fee_amount": ScaledInt(tr.op_fee_mantissa, tr.op_fee_exponent),
        "fee_denom": _from_vocab(src, vocab.fee_denom),
        "created_at": _ts(created),
        "completed_at": _ts(completed),
        "updated_at": _ts(np.where(completed >= 0, completed, created)),
    }
