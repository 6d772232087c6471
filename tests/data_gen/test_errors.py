"""data_gen.errors: a bad parameter is a ParamError, which callers may catch as a ValueError."""

from __future__ import annotations

import pytest

from data_gen import GenerationParams, ParamError


def test_param_error_is_a_value_error_with_a_one_line_message() -> None:
    with pytest.raises(ValueError) as caught:
        GenerationParams(seed=-1)
    assert isinstance(caught.value, ParamError)
    assert "\n" not in str(caught.value)
