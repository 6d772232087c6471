"""Array types the generator hands to the encoder that numpy has no dtype for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ScaledInt:
    """Exact big integers as ``mantissa * 10**exponent`` (both int64 arrays, exponent >= 0).

    Token amounts in base units overflow int64 for 18-decimal denoms (1e6 DYDX is 1e24 adydx); a
    mantissa in micro-units with exponent 12 keeps them exact and vectorized.
    """

    mantissa: np.ndarray
    exponent: np.ndarray

    def __post_init__(self) -> None:
        if self.mantissa.shape != self.exponent.shape:
            raise ValueError("mantissa and exponent must have the same shape")
        if self.mantissa.dtype != np.int64 or self.exponent.dtype != np.int64:
            raise ValueError("mantissa and exponent must be int64 arrays")

    def __len__(self) -> int:
        return int(self.mantissa.shape[0])

    def __getitem__(self, index: Any) -> ScaledInt:
        return ScaledInt(self.mantissa[index], self.exponent[index])

    def to_python(self) -> list[int]:
        """Exact Python ints (slow; for tests and small tables)."""
        return [int(m) * 10 ** int(e) for m, e in zip(self.mantissa, self.exponent, strict=True)]

    @staticmethod
    def concat(parts: list[ScaledInt]) -> ScaledInt:
        return ScaledInt(
            np.concatenate([p.mantissa for p in parts]), np.concatenate([p.exponent for p in parts])
        )
