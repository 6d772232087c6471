"""Two runs' recorded values compared key by key, by the direction and noise of a table of metrics
(``metrics``: key -> :class:`Metric`, :func:`ibcbench.metrics.all_metrics` in the kit)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ibcbench.results.metrics.metric import Metric, Verdict, short, unit_suffix


@dataclass(frozen=True)
class MetricDiff:
    """One recorded value of a notebook, this run against the baseline."""

    notebook: str
    key: str
    baseline: Any
    current: Any
    metric: Metric | None
    verdict: Verdict
    #: for compared values the change (``x2.76``, ``+4``); otherwise why it was not compared
    detail: str

    @property
    def compared(self) -> bool:
        return self.verdict != "not compared"

    @property
    def unit(self) -> str:
        return self.metric.unit if self.metric else ""

    def line(self) -> str:
        """One line: ``regression: 02 wallet_history_p50_ms_service 0.33 -> 0.91 ms (x2.76, noise 25%)``."""
        change = f"{short(self.baseline)} -> {short(self.current)}{unit_suffix(self.unit)}"
        if not self.compared:
            return f"not compared: {self.notebook} {self.key} ({self.detail})"
        noise = self.metric.noise_text if self.metric else "0"
        return f"{self.verdict}: {self.notebook} {self.key} {change} ({self.detail}, noise {noise})"


def _number(value: Any) -> float | None:
    """A comparable number (booleans as 0/1), or None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def compare_value(
    notebook: str,
    key: str,
    baseline: Any,
    current: Any,
    *,
    metrics: Mapping[str, Metric],
    metric_key: str | None = None,
) -> MetricDiff:
    """Compare one recorded value with its baseline by ``metrics`` (``metric_key`` for dict entries)."""
    metric = metrics.get(metric_key or key)

    def diff(verdict: Verdict, detail: str) -> MetricDiff:
        return MetricDiff(notebook, key, baseline, current, metric, verdict, detail)

    if metric is None:
        return diff("not compared", "no direction known")
    if metric.better == "none":
        return diff(
            "not compared", f"informational: {metric.note}" if metric.note else "informational"
        )
    if baseline is None and current is None:
        return diff("not compared", "no value in either run")
    if baseline is None:
        return diff("not compared", "no value in the baseline")
    if current is None:
        return diff("not compared", "no value in this run")
    old, new = _number(baseline), _number(current)
    if old is None or new is None:
        return diff("not compared", "not a number")
    delta = new - old
    if isinstance(baseline, bool) or isinstance(current, bool):
        change = "changed" if delta else "unchanged"
    else:
        change = f"x{new / old:.3g}" if old else f"{delta:+.3g}"
    if old == 0 or new == 0 or (old < 0) != (new < 0):
        relative_beyond = True  # no finite factor: the absolute threshold decides
    else:
        factor = new / old
        relative_beyond = max(factor, 1 / factor) > 1 + metric.noise_rel
    beyond = abs(delta) > metric.noise_abs and relative_beyond
    if not beyond:
        return diff("same", change)
    worse = delta > 0 if metric.better == "lower" else delta < 0
    return diff("regression" if worse else "improvement", change)


def compare_recorded(
    baseline: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Any]],
    *,
    metrics: Mapping[str, Metric],
) -> list[MetricDiff]:
    """Every value recorded in either run, notebook by notebook (``{"02": {key: value}}``), each by
    its metric in ``metrics`` (a key without one is "not compared (no direction known)").

    A dict of numbers under a key with a direction (``refresh_ms``) is compared entry by entry
    (``refresh_ms[aggregate]``); keys recorded in one run only are listed as not compared.
    """
    diffs: list[MetricDiff] = []
    for notebook in sorted(set(baseline) | set(current)):
        old_values, new_values = baseline.get(notebook), current.get(notebook)
        for key in _keys(old_values or {}, new_values or {}):
            if old_values is None:
                diffs.append(
                    _absent(
                        notebook, key, None, new_values, "notebook not in the baseline", metrics
                    )
                )
                continue
            if new_values is None:
                diffs.append(
                    _absent(notebook, key, old_values, None, "notebook not in this run", metrics)
                )
                continue
            if key not in old_values:
                diffs.append(_absent(notebook, key, None, new_values, "only in this run", metrics))
                continue
            if key not in new_values:
                diffs.append(
                    _absent(notebook, key, old_values, None, "only in the baseline", metrics)
                )
                continue
            old, new = old_values[key], new_values[key]
            metric = metrics.get(key)
            if (
                metric is not None
                and metric.better != "none"
                and (isinstance(old, Mapping) or isinstance(new, Mapping))
            ):
                diffs.extend(_compare_entries(notebook, key, old, new, metric))
            else:
                diffs.append(compare_value(notebook, key, old, new, metrics=metrics))
    return diffs


def _keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> Iterable[str]:
    return list(a) + [k for k in b if k not in a]


def _absent(
    notebook: str,
    key: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    why: str,
    metrics: Mapping[str, Metric],
) -> MetricDiff:
    return MetricDiff(
        notebook,
        key,
        (old or {}).get(key),
        (new or {}).get(key),
        metrics.get(key),
        "not compared",
        why,
    )


def _compare_entries(
    notebook: str, key: str, old: Any, new: Any, metric: Metric
) -> list[MetricDiff]:
    old_map = old if isinstance(old, Mapping) else {}
    new_map = new if isinstance(new, Mapping) else {}
    out = []
    for entry in _keys(old_map, new_map):
        name = f"{key}[{entry}]"
        if entry not in old_map or entry not in new_map:
            where = "this run" if entry in new_map else "the baseline"
            out.append(
                MetricDiff(
                    notebook,
                    name,
                    old_map.get(entry),
                    new_map.get(entry),
                    metric,
                    "not compared",
                    f"only in {where}",
                )
            )
            continue
        out.append(
            compare_value(
                notebook,
                name,
                old_map[entry],
                new_map[entry],
                metrics={key: metric},
                metric_key=key,
            )
        )
    return out
