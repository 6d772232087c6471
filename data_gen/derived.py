"""The derived tables, computed from the generated packets as they stream by.

network_stats (daily per source chain), channel_performance (hourly per sending channel end) and
relayer_performance (daily per operator) are sums over the packets, so their totals equal the packet
counts. Batches cover whole hours: hourly figures (p95 included) are exact within a batch; daily
distinct counts are merged across batches.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from data_gen.tables import TABLES
from data_gen.traffic import (
    ACKNOWLEDGED,
    ERROR,
    HOUR_US,
    PENDING,
    RECEIVED,
    STUCK,
    TIMEOUT,
    US,
    Traffic,
)
from data_gen.vocabulary import Vocabulary, from_vocab

DAY_US = 24 * HOUR_US
FEE_PER_RELAY_USD = 0.004  # modelling choice: fee incentives earned per delivered packet
GAS_PER_ATTEMPT_USD = 0.0025  # modelling choice: gas per relay transaction, won or lost


class DerivedAccumulator:
    """Sums for network_stats, channel_performance and relayer_performance over the batches of a
    span; the tables come out once every batch was added."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        t = vocab.network
        self.n_chains = len(t.chains)
        self.n_relayers = t.relayer_address.size
        self.n_routes = t.route_src.size
        # network_stats: (chain, day) -> sums
        self.net: dict[str, defaultdict[tuple[int, int], float]] = {
            k: defaultdict(float) for k in ("total", "ok", "failed", "usd", "clear_sum", "clear_n")
        }
        self.net_wallets: dict[tuple[int, int], list[np.ndarray]] = defaultdict(list)
        self.net_channels: dict[tuple[int, int], set[int]] = defaultdict(set)
        # relayer_performance: (relayer, day) -> sums
        self.rel: dict[str, defaultdict[tuple[int, int], float]] = {
            k: defaultdict(float) for k in ("wins", "front_wins", "losses", "relay_sum", "timeouts")
        }
        self.rel_channels: dict[tuple[int, int], set[int]] = defaultdict(set)
        self.channel_rows: list[dict[str, np.ndarray]] = []

    def add(self, tr: Traffic) -> None:
        """Count one batch of traffic into the three tables' sums."""
        if tr.n == 0:
            return
        day = tr.created_us // DAY_US
        finished = tr.acked_us >= 0
        clear = np.where(finished, (tr.acked_us - tr.created_us) / US, 0.0)
        self._add_network_stats(tr, day, finished, clear)
        self._add_relayer_performance(tr, day)
        self._add_channel_performance(tr, finished, clear)

    def _add_network_stats(
        self, tr: Traffic, day: np.ndarray, finished: np.ndarray, clear: np.ndarray
    ) -> None:
        """Per (source chain, day): packets, outcomes, volume, clear times, wallets, channels."""
        src = self.vocab.network.route_src[tr.route]
        key = src * 1_000_000 + day
        uniq, inv = np.unique(key, return_inverse=True)

        def sums(values: np.ndarray) -> np.ndarray:
            return np.bincount(inv, weights=values, minlength=uniq.size)

        cols = {
            "total": np.bincount(inv, minlength=uniq.size).astype(float),
            "ok": sums((tr.status == ACKNOWLEDGED).astype(float)),
            "failed": sums(((tr.status == ERROR) | (tr.status == TIMEOUT)).astype(float)),
            "usd": sums(tr.usd),
            "clear_sum": sums(clear),
            "clear_n": sums(finished.astype(float)),
        }
        for i, k in enumerate(uniq.tolist()):
            kk = (k // 1_000_000, k % 1_000_000)
            for name, arr in cols.items():
                self.net[name][kk] += float(arr[i])
        wallet_keys = np.unique((src.astype(np.int64) << 40) + (day << 24) + tr.wallet)
        for k in np.unique(wallet_keys >> 24):
            sel = wallet_keys[(wallet_keys >> 24) == k]
            self.net_wallets[(int(k >> 16), int(k & 0xFFFF))].append(sel & 0xFFFFFF)
        for k, r in set(zip(key.tolist(), tr.route.tolist(), strict=True)):
            self.net_channels[(k // 1_000_000, k % 1_000_000)].add(r)

    def _add_relayer_performance(self, tr: Traffic, day: np.ndarray) -> None:
        """Per (relayer, day): races won (against competition or not), lost, relay times,
        timeouts relayed and the channel pairs served."""
        won = tr.relayer >= 0
        rkey = tr.relayer[won] * 1_000_000 + day[won]
        has_competition = (tr.competitors[won] >= 0).any(axis=1)
        recv_ok = tr.received_us[won] >= 0
        relay_time = np.where(recv_ok, (tr.received_us[won] - tr.created_us[won]) / US, 0.0)
        u, inverse = np.unique(rkey, return_inverse=True)
        for name, values in (
            ("wins", np.ones(rkey.size)),
            ("front_wins", has_competition.astype(float)),
            ("relay_sum", relay_time),
            ("timeouts", (tr.status[won] == TIMEOUT).astype(float)),
        ):
            s = np.bincount(inverse, weights=values, minlength=u.size)
            for k, v in zip(u.tolist(), s.tolist(), strict=True):
                self.rel[name][(k // 1_000_000, k % 1_000_000)] += v
        comp = tr.competitors
        rows, slots = np.nonzero(comp >= 0)
        lkey = comp[rows, slots] * 1_000_000 + day[rows]
        u, c = np.unique(lkey, return_counts=True)
        for k, v in zip(u.tolist(), c.tolist(), strict=True):
            self.rel["losses"][(k // 1_000_000, k % 1_000_000)] += v
        pairs = self.vocab.network.route_pair[tr.route]
        for k, p in set(zip(rkey.tolist(), pairs[won].tolist(), strict=True)):
            self.rel_channels[(k // 1_000_000, k % 1_000_000)].add(p)

    def _add_channel_performance(
        self, tr: Traffic, finished: np.ndarray, clear: np.ndarray
    ) -> None:
        """Rows per (sending channel end, hour): hours are whole within a batch, so they are final,
        p95 included."""
        hour = tr.created_us // HOUR_US
        ckey = tr.route.astype(np.int64) * 10_000_000 + hour
        order = np.lexsort((clear, ckey))
        sk = ckey[order]
        u, start, counts = np.unique(sk, return_index=True, return_counts=True)
        inv = np.repeat(np.arange(u.size), counts)
        st = tr.status[order]
        fin = finished[order]
        cl = clear[order]

        def csum(mask: np.ndarray) -> np.ndarray:
            return np.bincount(inv, weights=mask.astype(float), minlength=u.size)

        n_fin = csum(fin)
        clear_sum = np.bincount(inv, weights=np.where(fin, cl, 0.0), minlength=u.size)
        # p95 over finished packets: sorted by (key, clear) with unfinished ones as 0 at the front
        unfinished = counts - n_fin.astype(np.int64)
        pos = start + unfinished + np.floor(0.95 * np.maximum(n_fin - 1, 0)).astype(np.int64)
        p95 = np.where(n_fin > 0, cl[np.minimum(pos, sk.size - 1)], np.nan)
        acked = csum(st == ACKNOWLEDGED)
        failed = csum(st == ERROR)
        timed_out = csum(st == TIMEOUT)
        pending = csum((st == PENDING) | (st == RECEIVED) | (st == STUCK))
        decided = acked + failed + timed_out
        success = np.where(decided > 0, np.round(100.0 * acked / np.maximum(decided, 1), 2), np.nan)
        avg = np.where(n_fin > 0, clear_sum / np.maximum(n_fin, 1), np.nan)
        congestion = np.clip(
            100.0
            * (
                0.5 * np.minimum(1.0, 20.0 * pending / counts)
                + 0.5 * np.minimum(1.0, np.nan_to_num(p95) / 600.0)
            ),
            0,
            100,
        )
        relayer_sorted = tr.relayer[order]
        rk = inv.astype(np.int64) * (self.n_relayers + 1) + (relayer_sorted + 1)
        ur = np.unique(rk[relayer_sorted >= 0])
        active = np.bincount(ur // (self.n_relayers + 1), minlength=u.size)
        route = u // 10_000_000
        self.channel_rows.append(
            {
                "route": route,
                "hour": u % 10_000_000,
                "sent": counts.astype(np.int64),
                "acked": acked.astype(np.int64),
                "failed": failed.astype(np.int64),
                "timed_out": timed_out.astype(np.int64),
                "pending": pending.astype(np.int64),
                "avg": avg,
                "p95": p95,
                "success": success,
                "congestion": np.round(congestion, 2),
                "active": active.astype(np.int64),
            }
        )

    # ---- final tables ----------------------------------------------------------------------
    def network_stats(self) -> dict[str, object]:
        keys = sorted(self.net["total"])
        chain = np.array([k[0] for k in keys], dtype=np.int64)
        day = np.array([k[1] for k in keys], dtype=np.int64)

        def col(name: str) -> np.ndarray:
            return np.array([self.net[name][k] for k in keys], dtype=float)

        ok, failed = col("ok"), col("failed")
        decided = ok + failed
        clear_n = col("clear_n")
        wallets = np.array(
            [np.unique(np.concatenate(self.net_wallets[k])).size for k in keys], dtype=np.int64
        )
        return {
            "chain_id": from_vocab(chain, self.vocab.chain_ids),
            "date": day.astype("datetime64[D]"),
            "total_packets": col("total").astype(np.int64),
            "successful_packets": ok.astype(np.int64),
            "failed_packets": failed.astype(np.int64),
            "success_rate": np.where(
                decided > 0, np.round(100.0 * ok / np.maximum(decided, 1), 2), np.nan
            ),
            "total_volume_usd": np.round(col("usd"), 2),
            "avg_clear_time_seconds": np.where(
                clear_n > 0, col("clear_sum") / np.maximum(clear_n, 1), np.nan
            ),
            "active_wallets": wallets,
            "active_channels": np.array([len(self.net_channels[k]) for k in keys], dtype=np.int64),
        }

    def channel_performance(self) -> dict[str, object]:
        t = self.vocab.network
        parts = {k: np.concatenate([r[k] for r in self.channel_rows]) for k in self.channel_rows[0]}
        order = np.lexsort((parts["hour"], parts["route"]))
        p = {k: v[order] for k, v in parts.items()}
        route = p["route"].astype(np.int64)
        return {
            "chain_id": from_vocab(t.route_src[route], self.vocab.chain_ids),
            "channel_id": from_vocab(t.route_src_channel[route], self.vocab.channel),
            "counterparty_chain_id": from_vocab(t.route_dst[route], self.vocab.chain_ids),
            "counterparty_channel_id": from_vocab(t.route_dst_channel[route], self.vocab.channel),
            "hour": (p["hour"].astype(np.int64) * HOUR_US).astype("datetime64[us]"),
            "packets_sent": p["sent"],
            "packets_acknowledged": p["acked"],
            "packets_failed": p["failed"],
            "packets_timed_out": p["timed_out"],
            "packets_pending": p["pending"],
            "avg_clear_time_seconds": p["avg"],
            "p95_clear_time_seconds": p["p95"],
            "success_rate": p["success"],
            "congestion_score": p["congestion"],
            "active_relayers": p["active"],
        }

    def relayer_performance(self) -> dict[str, object]:
        t = self.vocab.network
        keys = sorted(set(self.rel["wins"]) | set(self.rel["losses"]))
        relayer = np.array([k[0] for k in keys], dtype=np.int64)
        day = np.array([k[1] for k in keys], dtype=np.int64)

        def col(name: str) -> np.ndarray:
            return np.array([self.rel[name].get(k, 0.0) for k in keys], dtype=float)

        wins, losses, front = col("wins"), col("losses"), col("front_wins")
        timeouts = col("timeouts")
        avg = np.where(wins > 0, col("relay_sum") / np.maximum(wins, 1), np.nan)
        win_rate = np.where(wins + losses > 0, wins / np.maximum(wins + losses, 1), 0.0)
        reliability = np.where(wins > 0, 1.0 - timeouts / np.maximum(wins, 1), 0.0)
        speed = np.where(np.isnan(avg), 0.0, np.clip(1.0 - np.nan_to_num(avg) / 120.0, 0.0, 1.0))
        activity = np.minimum(1.0, wins / 50.0)
        reputation = np.round(
            100.0 * (0.35 * win_rate + 0.3 * reliability + 0.2 * speed + 0.15 * activity), 2
        )
        return {
            "relayer_address": from_vocab(relayer, t.relayer_address),
            "relayer_name": from_vocab(relayer, t.relayer_name),
            "software": from_vocab(relayer, t.relayer_software),
            "date": day.astype("datetime64[D]"),
            "packets_relayed": wins.astype(np.int64),
            "frontrun_wins": front.astype(np.int64),
            "frontrun_losses": losses.astype(np.int64),
            "fees_earned_usd": np.round(wins * FEE_PER_RELAY_USD, 6),
            "gas_spent_usd": np.round((wins + losses) * GAS_PER_ATTEMPT_USD, 6),
            "avg_relay_time_seconds": avg,
            "channels_served": np.array(
                [len(self.rel_channels.get(k, ())) for k in keys], dtype=np.int64
            ),
            "reputation_score": reputation,
        }


def check_columns(table: str, columns: dict[str, object]) -> None:
    expected = [c for c, _ in TABLES[table]]
    if list(columns) != expected:
        raise AssertionError(f"{table}: generated columns {list(columns)} != {expected}")
