"""The derived tables: COPY into a temp table, then merge on the natural key (spans add up)."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql

from data_gen.tables import DERIVED_KEYS, TABLES
from ibcbench.data.load.copy import copy_stream


def upsert_derived(
    cur: psycopg.Cursor, table: str, stream: Iterable[bytes | memoryview]
) -> tuple[int, int]:
    """COPY into a temp table, then merge on the natural key: counts add up (a day split across two
    spans), rates and averages are recomputed, distinct counts keep the larger value. Returns the
    bytes written and the rows the COPY took."""
    temp = f"_load_{table}"
    cols = [c for c, _ in TABLES[table]]
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(temp),
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.Identifier(table),
        )
    )
    written = copy_stream(cur, table, stream, into=temp)
    copied = cur.rowcount
    keys = DERIVED_KEYS[table]
    cur.execute(
        sql.SQL(
            "INSERT INTO {t} ({cols}) SELECT {cols} FROM {tmp} ON CONFLICT ({keys}) DO UPDATE SET {sets}"
        ).format(
            t=sql.Identifier(table),
            cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
            tmp=sql.Identifier(temp),
            keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
            sets=sql.SQL(_MERGE[table]),
        )
    )
    cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(temp)))
    return written, copied


_MERGE = {
    "network_stats": """
        total_packets = network_stats.total_packets + EXCLUDED.total_packets,
        successful_packets = network_stats.successful_packets + EXCLUDED.successful_packets,
        failed_packets = network_stats.failed_packets + EXCLUDED.failed_packets,
        success_rate = round(100.0 * (network_stats.successful_packets + EXCLUDED.successful_packets)
            / nullif(network_stats.successful_packets + EXCLUDED.successful_packets
                     + network_stats.failed_packets + EXCLUDED.failed_packets, 0), 2),
        total_volume_usd = network_stats.total_volume_usd + EXCLUDED.total_volume_usd,
        avg_clear_time_seconds = (coalesce(network_stats.avg_clear_time_seconds, 0) * network_stats.successful_packets
            + coalesce(EXCLUDED.avg_clear_time_seconds, 0) * EXCLUDED.successful_packets)
            / nullif(network_stats.successful_packets + EXCLUDED.successful_packets, 0),
        active_wallets = greatest(network_stats.active_wallets, EXCLUDED.active_wallets),
        active_channels = greatest(network_stats.active_channels, EXCLUDED.active_channels)""",
    "channel_performance": """
        packets_sent = EXCLUDED.packets_sent, packets_acknowledged = EXCLUDED.packets_acknowledged,
        packets_failed = EXCLUDED.packets_failed, packets_timed_out = EXCLUDED.packets_timed_out,
        packets_pending = EXCLUDED.packets_pending, avg_clear_time_seconds = EXCLUDED.avg_clear_time_seconds,
        p95_clear_time_seconds = EXCLUDED.p95_clear_time_seconds, success_rate = EXCLUDED.success_rate,
        congestion_score = EXCLUDED.congestion_score, active_relayers = EXCLUDED.active_relayers""",
    "relayer_performance": """
        packets_relayed = relayer_performance.packets_relayed + EXCLUDED.packets_relayed,
        frontrun_wins = relayer_performance.frontrun_wins + EXCLUDED.frontrun_wins,
        frontrun_losses = relayer_performance.frontrun_losses + EXCLUDED.frontrun_losses,
        fees_earned_usd = relayer_performance.fees_earned_usd + EXCLUDED.fees_earned_usd,
        gas_spent_usd = relayer_performance.gas_spent_usd + EXCLUDED.gas_spent_usd,
        avg_relay_time_seconds = (coalesce(relayer_performance.avg_relay_time_seconds, 0) * relayer_performance.packets_relayed
            + coalesce(EXCLUDED.avg_relay_time_seconds, 0) * EXCLUDED.packets_relayed)
            / nullif(relayer_performance.packets_relayed + EXCLUDED.packets_relayed, 0),
        channels_served = greatest(relayer_performance.channels_served, EXCLUDED.channels_served),
        reputation_score = round((relayer_performance.reputation_score * relayer_performance.packets_relayed
            + EXCLUDED.reputation_score * EXCLUDED.packets_relayed)
            / nullif(relayer_performance.packets_relayed + EXCLUDED.packets_relayed, 0), 2)""",
}
