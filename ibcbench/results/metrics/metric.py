"""One recorded key's definition (:class:`Metric`), the noise thresholds by kind of figure, and how
values and units are written. Each key's metric is declared beside the ``key_numbers()`` that makes
it (a result's ``METRICS``); :func:`ibcbench.metrics.all_metrics` gathers them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ibcbench.errors import ConfigError

Better = Literal["higher", "lower", "none"]
Verdict = Literal["regression", "improvement", "same", "not compared"]


@dataclass(frozen=True)
class Metric:
    """One recorded key: its better direction, unit and noise threshold.

    ``noise_rel`` sets a factor either way (0.25: from x0.8 to x1.25 is noise; 1.0: within a halving
    or a doubling); ``noise_abs`` is in the metric's unit (0: any change of a count counts).
    ``optional``: the key is made only in some configurations (an edition, a sweep's grid), so a
    result may lack it.
    """

    key: str
    better: Better
    unit: str = ""
    noise_rel: float = 0.0
    noise_abs: float = 0.0
    note: str = ""
    optional: bool = False

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower", "none"):
            raise ConfigError(
                f"metric {self.key!r}: better must be 'higher', 'lower' or 'none', not {self.better!r}"
            )
        if self.noise_rel < 0 or self.noise_abs < 0:
            raise ConfigError(f"metric {self.key!r}: noise thresholds must be >= 0")

    @property
    def noise_text(self) -> str:
        """The threshold as people read it: ``x1.25``, ``x2.5 and 0.05 ms``, ``0``."""
        parts = []
        if self.noise_rel:
            parts.append(f"x{1 + self.noise_rel:g}")
        if self.noise_abs:
            parts.append(f"{short(self.noise_abs)}{unit_suffix(self.unit)}")
        return " and ".join(parts) or "0"


#: relative thresholds by kind of figure (``ibcbench.results.metrics``'s docstring says where they come from)
LOOKUP = 1.5  # a round-trip-bound p50 (an index lookup): x2.5
TIMING = 5.0  # a CPU-bound timing or rate (a scan, a refresh, a short insert): x6
RATIO = 5.0  # a ratio of two timings taken at different moments (a speed-up): x6
THROUGHPUT = 1.0  # a throughput over a sweep, or a ratio of two: x2
ESTIMATE = 1.0  # a planner estimate: x2


def lookup(key: str, note: str) -> Metric:
    """A round-trip-bound p50 in ms (an index lookup): lower is better, x2.5 and 0.05 ms is noise."""
    return Metric(key, "lower", "ms", LOOKUP, 0.05, note)


def informational(key: str, unit: str, note: str, *, optional: bool = False) -> Metric:
    """A value with no better direction (a property of the data, a name): never compared."""
    return Metric(key, "none", unit, note=note, optional=optional)


#: the note of a property of the generated data
GENERATED_DATA = (
    "a property of the generated data, set by scale and seed: a change means different data"
)


def unit_suffix(unit: str) -> str:
    """`` ms`` after a number, ``%`` and ``x`` without a space."""
    if not unit:
        return ""
    return unit if unit in ("%", "x") else f" {unit}"


def short(value: Any) -> str:
    """A value as a line shows it: ``1,234``, ``0.331``, ``True``."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
