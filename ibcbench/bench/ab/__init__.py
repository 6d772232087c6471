"""The paired, interleaved A/B: did a schema or settings change make any workload query slower?

- :mod:`~ibcbench.bench.ab.sides`: the two databases, copies of one dataset, each changed by its
  migrations folder and SQL files;
- :mod:`~ibcbench.bench.ab.rounds`: the interleaved timing, rounds of every query on both sides in a
  seeded random order;
- :mod:`~ibcbench.bench.ab.stats`: the t-interval on log ratios, the verdict and the MDE (pure);
- :mod:`~ibcbench.bench.ab.counters`: EXPLAIN work counters per query and side, the plan change;
- :mod:`~ibcbench.bench.ab.result`: :class:`ABResult`; :mod:`~ibcbench.bench.ab.benchmark`: ``run_ab``.
"""

from ibcbench.bench.ab.benchmark import check_ab, run_ab
from ibcbench.bench.ab.result import AB_JSON, ABResult
from ibcbench.bench.ab.rounds import RoundsPolicy
from ibcbench.bench.ab.sides import SideSpec
from ibcbench.bench.ab.stats import PRACTICAL_RATIO, RatioInterval, ratio_interval, verdict

__all__ = [
    "AB_JSON",
    "PRACTICAL_RATIO",
    "ABResult",
    "RatioInterval",
    "RoundsPolicy",
    "SideSpec",
    "check_ab",
    "ratio_interval",
    "run_ab",
    "verdict",
]
