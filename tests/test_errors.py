"""The kit's errors (pure)."""

from __future__ import annotations

import pytest

from ibcbench.errors import first_line


@pytest.mark.parametrize(
    ("exc", "default", "expected"),
    [
        (ValueError("first\nsecond"), None, "first"),
        (ValueError("  padded  \n"), None, "padded"),
        (ValueError(""), None, "ValueError"),
        (ValueError(""), "disk full", "disk full"),
        (OSError(), "", ""),
    ],
)
def test_first_line_is_the_first_line_or_a_default(exc, default, expected) -> None:
    assert first_line(exc, default) == expected
