"""The generator's tests run without a database; the tiny tables are generated once per session."""

from __future__ import annotations

import pytest

from data_gen import GenerationParams
from tests.data_gen.frames import Frames, collect


@pytest.fixture(scope="session")
def tiny() -> tuple[Frames, dict]:
    """Tiny at seed 42, in batches of about 5,000 packets, incidents planted."""
    return collect(GenerationParams(seed=42, scale="tiny", batch_packets=5_000))


@pytest.fixture(scope="session")
def incident_free() -> tuple[Frames, dict]:
    """The same traffic as ``tiny`` without its incidents."""
    return collect(GenerationParams(seed=42, scale="tiny", incidents=False))
