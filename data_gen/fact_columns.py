"""The fact tables' columns (packet_flow, clearing_operations) from a batch of :class:`Traffic`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_gen.columns import ScaledInt
from data_gen.traffic import (
    ERROR,
    OP_STATUS,
    PENDING,
    RECEIVED,
    STATUS,
    STUCK,
    TIMEOUT,
    US,
    Traffic,
)
from data_gen.vocabulary import Vocabulary, categorical, from_vocab


def _ts(us: np.ndarray) -> np.ndarray:
    """µs since the epoch as ``datetime64[us]``; -1 is NaT (NULL)."""
    out = us.astype("datetime64[us]")
    out[us < 0] = np.datetime64("NaT")
    return out


def packet_columns(tr: Traffic, vocab: Vocabulary) -> dict[str, object]:
    t = vocab.network
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
        "source_chain": from_vocab(src, vocab.chain_ids),
        "destination_chain": from_vocab(dst, vocab.chain_ids),
        "source_port": port,
        "source_channel": from_vocab(t.route_src_channel[tr.route], vocab.channel),
        "destination_port": port.copy(),
        "destination_channel": from_vocab(t.route_dst_channel[tr.route], vocab.channel),
        "sequence": tr.sequence,
        "status": from_vocab(tr.status, STATUS),
        "sender": vocab.addresses(src, tr.wallet),
        "receiver": vocab.addresses(dst, tr.receiver_wallet),
        "amount": ScaledInt(tr.mantissa, tr.exponent),
        "denom": categorical(denom),
        "relayer": from_vocab(tr.relayer, t.relayer_address),
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
    t = vocab.network
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
        "operation_type": from_vocab(
            op_type, np.array(["transfer", "batch_transfer"], dtype=object)
        ),
        "source_chain": from_vocab(src, vocab.chain_ids),
        "destination_chain": from_vocab(dst, vocab.chain_ids),
        "channel_id": from_vocab(t.route_src_channel[route], vocab.channel),
        "sequence": tr.sequence[first],
        "packet_count": tr.op_size,
        "amount": ScaledInt(amount_mantissa, tr.exponent[first]),
        "denom": categorical(denom),
        "amount_usd": np.round(usd, 2),
        "status": from_vocab(status, OP_STATUS),
        "fee_amount": ScaledInt(tr.op_fee_mantissa, tr.op_fee_exponent),
        "fee_denom": from_vocab(src, vocab.fee_denom),
        "created_at": _ts(created),
        "completed_at": _ts(completed),
        "updated_at": _ts(np.where(completed >= 0, completed, created)),
    }
