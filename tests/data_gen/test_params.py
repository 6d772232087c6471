"""data_gen.params: bad parameters are refused in one line before anything is generated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from data_gen import GenerationParams, ParamError, ResumeState


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": "huge"}, "scale 'huge' is unknown: use one of tiny, small, default, large"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"packets": 0}, "packets must be between 1 and 2e9"),
        ({"days": 0.001}, "days must be between 1/24"),
        ({"batch_packets": 10}, "batch_packets must be between 1000"),
        ({"start": datetime(2026, 1, 1)}, "start must be timezone-aware"),
        (
            {
                "start": datetime(2026, 1, 1, tzinfo=UTC),
                "resume": ResumeState(start=datetime(2026, 2, 1, tzinfo=UTC)),
            },
            "overlaps the existing data",
        ),
    ],
)
def test_bad_parameters_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        GenerationParams(**kwargs)


def test_incidents_must_be_a_bool() -> None:
    with pytest.raises(ParamError, match="incidents must be True or False, not 'no'"):
        GenerationParams(incidents="no")  # type: ignore[arg-type]
