"""The generator's one exception: bad parameters, said in one line with what to do."""

from __future__ import annotations


class ParamError(ValueError):
    """A generation parameter is invalid; raised before anything is generated."""
