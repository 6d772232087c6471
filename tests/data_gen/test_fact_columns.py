"""data_gen.fact_columns: packet_flow and clearing_operations as the traffic gives them."""

from __future__ import annotations

import numpy as np

from data_gen.fact_columns import operation_status
from data_gen.traffic import ACKNOWLEDGED, ERROR, OP_STATUS, PENDING, RECEIVED, STUCK, TIMEOUT
from tests.data_gen.frames import Frames


class _Ops:
    """The part of a Traffic batch operation_status reads."""

    def __init__(self, status: list[int], op_index: list[int]) -> None:
        self.status = np.array(status)
        self.op_index = np.array(op_index)
        self.op_id = np.arange(max(op_index) + 1)


def test_an_operation_has_the_worst_status_of_its_packets() -> None:
    tr = _Ops(
        [ACKNOWLEDGED, ACKNOWLEDGED, ERROR, STUCK, TIMEOUT, RECEIVED, ACKNOWLEDGED, PENDING],
        [0, 1, 1, 2, 2, 3, 4, 4],
    )
    got = OP_STATUS[operation_status(tr)].tolist()  # type: ignore[arg-type]
    assert got == ["completed", "refunded", "stuck", "pending", "pending"]


def test_denoms_are_native_or_vouchers_of_the_path(tiny: tuple[Frames, dict]) -> None:
    frames, _ = tiny
    denoms = frames["packet_flow"].denom.unique()
    assert any(d.startswith("ibc/") for d in denoms)
    for d in denoms:
        assert (
            d.startswith("ibc/") and len(d) == 68 and d[4:] == d[4:].upper()
        ) or not d.startswith("ibc/")


def test_operations_link_to_their_packets(tiny: tuple[Frames, dict]) -> None:
    frames, _ = tiny
    pf, ops = frames["packet_flow"], frames["clearing_operations"]
    counts = pf.groupby("operation_id").size()
    merged = ops.set_index("id").join(counts.rename("n"))
    assert (merged.n == merged.packet_count).all()
    first = pf.sort_values("id").groupby("operation_id").first()
    assert (first.loc[ops.id, "sequence"].to_numpy() == ops.sequence.to_numpy()).all()
    assert set(ops.operation_type) <= {"transfer", "batch_transfer"}
