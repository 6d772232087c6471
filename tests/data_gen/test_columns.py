"""data_gen.columns: ScaledInt keeps big token amounts exact."""

from __future__ import annotations

import numpy as np
import pytest

from data_gen.columns import ScaledInt


def test_scaled_ints_are_exact_past_int64() -> None:
    amounts = ScaledInt(np.array([1_000_000, 7], dtype=np.int64), np.array([18, 0], dtype=np.int64))
    assert amounts.to_python() == [10**24, 7]
    assert len(amounts) == 2
    assert amounts[1:].to_python() == [7]
    assert ScaledInt.concat([amounts, amounts[:1]]).to_python() == [10**24, 7, 10**24]


@pytest.mark.parametrize(
    ("mantissa", "exponent", "message"),
    [
        (np.zeros(2, dtype=np.int64), np.zeros(3, dtype=np.int64), "the same shape"),
        (np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int64), "must be int64 arrays"),
    ],
)
def test_bad_arrays_are_refused(mantissa: np.ndarray, exponent: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScaledInt(mantissa, exponent)
