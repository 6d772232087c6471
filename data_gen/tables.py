"""The generated tables, their columns in COPY order and their PostgreSQL types.

This mirrors ``schema/migrations/000002_create_core_tables.up.sql`` (the loader checks it against the
server before loading). Columns the database fills itself (identity ids of the derived tables,
``updated_at`` defaults) are not generated.

Value contract for a generated column (one numpy/pandas array per column, all of one batch's length):

==================  ===========================================================================
PostgreSQL type     array
==================  ===========================================================================
bigint / integer    ``np.int64`` (``integer`` columns must fit in int32)
double precision    ``np.float64``; NaN is NULL
numeric(p, s>0)     ``np.float64`` rounded to ``s`` decimals by the encoder; NaN is NULL
numeric(78, 0)      :class:`data_gen.columns.ScaledInt` (``mantissa * 10**exponent``)
text                ``pandas.Categorical`` of ``str`` categories; code -1 is NULL
timestamptz         ``np.datetime64[us]`` in UTC; NaT is NULL
date                ``np.datetime64[D]``
==================  ===========================================================================
"""

from __future__ import annotations

from types import MappingProxyType

Column = tuple[str, str]

PACKET_FLOW: tuple[Column, ...] = (
    ("id", "bigint"),
    ("operation_id", "bigint"),
    ("source_chain", "text"),
    ("destination_chain", "text"),
    ("source_port", "text"),
    ("source_channel", "text"),
    ("destination_port", "text"),
    ("destination_channel", "text"),
    ("sequence", "bigint"),
    ("status", "text"),
    ("sender", "text"),
    ("receiver", "text"),
    ("amount", "numeric(78,0)"),
    ("denom", "text"),
    ("relayer", "text"),
    ("timeout_revision", "bigint"),
    ("timeout_height", "bigint"),
    ("timeout_timestamp", "timestamptz"),
    ("received_at", "timestamptz"),
    ("acknowledged_at", "timestamptz"),
    ("clear_time_seconds", "double precision"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)

CLEARING_OPERATIONS: tuple[Column, ...] = (
    ("id", "bigint"),
    ("wallet_address", "text"),
    ("operation_type", "text"),
    ("source_chain", "text"),
    ("destination_chain", "text"),
    ("channel_id", "text"),
    ("sequence", "bigint"),
    ("packet_count", "integer"),
    ("amount", "numeric(78,0)"),
    ("denom", "text"),
    ("amount_usd", "numeric(20,2)"),
    ("status", "text"),
    ("fee_amount", "numeric(78,0)"),
    ("fee_denom", "text"),
    ("created_at", "timestamptz"),
    ("completed_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)

NETWORK_STATS: tuple[Column, ...] = (
    ("chain_id", "text"),
    ("date", "date"),
    ("total_packets", "bigint"),
    ("successful_packets", "bigint"),
    ("failed_packets", "bigint"),
    ("success_rate", "numeric(5,2)"),
    ("total_volume_usd", "numeric(20,2)"),
    ("avg_clear_time_seconds", "double precision"),
    ("active_wallets", "integer"),
    ("active_channels", "integer"),
)

CHANNEL_PERFORMANCE: tuple[Column, ...] = (
    ("chain_id", "text"),
    ("channel_id", "text"),
    ("counterparty_chain_id", "text"),
    ("counterparty_channel_id", "text"),
    ("hour", "timestamptz"),
    ("packets_sent", "bigint"),
    ("packets_acknowledged", "bigint"),
    ("packets_failed", "bigint"),
    ("packets_timed_out", "bigint"),
    ("packets_pending", "bigint"),
    ("avg_clear_time_seconds", "double precision"),
    ("p95_clear_time_seconds", "double precision"),
    ("success_rate", "numeric(5,2)"),
    ("congestion_score", "numeric(5,2)"),
    ("active_relayers", "integer"),
)

RELAYER_PERFORMANCE: tuple[Column, ...] = (
    ("relayer_address", "text"),
    ("relayer_name", "text"),
    ("software", "text"),
    ("date", "date"),
    ("packets_relayed", "bigint"),
    ("frontrun_wins", "bigint"),
    ("frontrun_losses", "bigint"),
    ("fees_earned_usd", "numeric(20,6)"),
    ("gas_spent_usd", "numeric(20,6)"),
    ("avg_relay_time_seconds", "double precision"),
    ("channels_served", "integer"),
    ("reputation_score", "numeric(5,2)"),
)

#: table name -> columns in COPY order. Fact tables first, derived tables after.
TABLES = MappingProxyType(
    {
        "packet_flow": PACKET_FLOW,
        "clearing_operations": CLEARING_OPERATIONS,
        "network_stats": NETWORK_STATS,
        "channel_performance": CHANNEL_PERFORMANCE,
        "relayer_performance": RELAYER_PERFORMANCE,
    }
)

#: the natural keys of the derived tables (their UNIQUE constraints): loading upserts on these.
DERIVED_KEYS = MappingProxyType(
    {
        "network_stats": ("chain_id", "date"),
        "channel_performance": ("chain_id", "channel_id", "hour"),
        "relayer_performance": ("relayer_address", "date"),
    }
)

FACT_TABLES = ("packet_flow", "clearing_operations")
DERIVED_TABLES = tuple(DERIVED_KEYS)
