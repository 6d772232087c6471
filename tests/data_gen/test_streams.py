"""data_gen.streams: hour by hour draws, independent of how hours are grouped into batches."""

from __future__ import annotations

import numpy as np
import pytest

from data_gen.streams import HourlyRng, seeded_rng


def test_a_draw_over_hours_is_each_hours_own_stream_in_turn() -> None:
    packets, ops = [3, 0, 5], [2, 0, 4]
    rng = HourlyRng(9, 5, 10, ops, packets)
    got = rng.random(8)
    expected = np.concatenate([seeded_rng(9, 5, 10).random(3), seeded_rng(9, 5, 12).random(5)])
    assert np.array_equal(got, expected)
    # a draw of the operations' count is split by operations per hour
    by_ops = rng.lognormal(0.0, 1.0, 6)
    again = HourlyRng(9, 5, 10, ops, packets)
    again.random(8)
    assert np.array_equal(by_ops, again.lognormal(0.0, 1.0, 6))


def test_batches_of_one_hour_draw_what_one_batch_of_all_hours_draws() -> None:
    packets, ops = [4, 6, 2], [3, 5, 2]
    whole = HourlyRng(1, 5, 0, ops, packets).uniform(0.0, 1.0, 12)
    parts = [
        HourlyRng(1, 5, h, [ops[h]], [packets[h]]).uniform(0.0, 1.0, packets[h]) for h in range(3)
    ]
    assert np.array_equal(whole, np.concatenate(parts))


def test_choice_is_numpys_choice_hour_by_hour() -> None:
    p = np.array([0.1, 0.6, 0.3])
    got = HourlyRng(3, 5, 0, [50], [80]).choice(3, size=80, p=p)
    assert np.array_equal(got, seeded_rng(3, 5, 0).choice(3, size=80, p=p))
    with pytest.raises(ValueError, match="one weight per choice"):
        HourlyRng(3, 5, 0, [50], [80]).choice(4, size=80, p=p)
