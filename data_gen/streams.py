"""Seeded random streams: one generator per (seed, purpose, hour), so that no output depends on
how the span is cut into batches."""

from __future__ import annotations

from typing import Any

import numpy as np


def seeded_rng(seed: int, purpose: int, hour: int = 0) -> np.random.Generator:
    """The generator of ``purpose`` (a small number per kind of draw) for one hour of the span."""
    return np.random.default_rng([seed, purpose, hour])


class HourlyRng:
    """Draws as if from one generator, but each hour's share comes from that hour's own stream.

    A draw of ``n`` values is split by hour (by operations or by packets, whichever sums to ``n``), so
    the values an hour gets do not depend on which batch the hour falls in.
    """

    def __init__(
        self, seed: int, purpose: int, first_hour: int, ops: list[int], packets: list[int]
    ) -> None:
        self._gens = [seeded_rng(seed, purpose, first_hour + h) for h in range(len(packets))]
        self._split = {sum(packets): packets, sum(ops): ops}

    def _draw(self, n: int, draw: Any) -> np.ndarray:
        counts = self._split[n]
        parts = [draw(g, c) for g, c in zip(self._gens, counts, strict=True) if c]
        return np.concatenate(parts) if parts else np.zeros(0)

    def random(self, size: int | tuple[int, int]) -> np.ndarray:
        if isinstance(size, tuple):
            return self._draw(size[0], lambda g, c: g.random((c, size[1])))
        return self._draw(size, lambda g, c: g.random(c))

    def choice(self, a: int, size: int, p: np.ndarray) -> np.ndarray:
        """``Generator.choice(a, size, p=p)`` hour by hour, the same draws: numpy's own method
        (uniforms searched in the normalized cumulative sum), with the sum taken once, not per hour."""
        if p.shape != (a,):
            raise ValueError("p must have one weight per choice")
        cdf = p.cumsum()
        cdf /= cdf[-1]
        return self._draw(size, lambda g, c: cdf.searchsorted(g.random(c), side="right"))

    def lognormal(self, mean: float, sigma: float, size: int) -> np.ndarray:
        return self._draw(size, lambda g, c: g.lognormal(mean, sigma, c))

    def uniform(self, low: float, high: float, size: int) -> np.ndarray:
        return self._draw(size, lambda g, c: g.uniform(low, high, c))

    def pareto(self, a: float, size: int) -> np.ndarray:
        return self._draw(size, lambda g, c: g.pareto(a, c))
