"""The report's findings: one sentence per question the suite answers, from the recorded values.

Pure functions (no database, no browser): ``recorded`` maps a notebook prefix ("02") to what that
notebook recorded, ``frames`` maps a result table's name to its frame (only the ones a sentence
reads an interval from: ``index_latency``, ``ts_columnstore_queries``). A question whose notebook
did not run has no sentence. The card values are taken from here too, so a card and its sentence
cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ibcbench.bench.incidents import window_text
from ibcbench.bench.poolsweep import Knee
from ibcbench.results.metrics import Metric

Recorded = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Finding:
    question: str
    sentence: str


def unit(key: str, metrics: Mapping[str, Metric]) -> str:
    """The unit of a recorded key ("" when unknown): the one place the report reads units from
    (``metrics``: :func:`ibcbench.metrics.all_metrics` in the kit)."""
    metric = metrics.get(key)
    return metric.unit if metric is not None else ""


def key_label(key: str, metrics: Mapping[str, Metric]) -> str:
    """A key as a reader reads it: ``worst_q_error`` -> ``worst q error (x)``."""
    u = unit(key, metrics)
    return key.replace("_", " ") + (f" ({u})" if u else "")


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")


def ratio_interval(base: pd.Series, row: pd.Series) -> tuple[float, float] | None:
    """base p50 / row p50 as the two medians' intervals allow (low = base low / row high)."""
    try:
        low = float(base.p50_ci_low_ms) / float(row.p50_ci_high_ms)
        high = float(base.p50_ci_high_ms) / float(row.p50_ci_low_ms)
    except (AttributeError, TypeError, ValueError, ZeroDivisionError):
        return None
    return (low, high) if pd.notna(low) and pd.notna(high) else None


def interval_text(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return ""
    low, high = interval
    if low <= 1 <= high:
        return f" (no difference: 95% interval x{_num(low)}–x{_num(high)})"
    return f" (95% interval x{_num(low)}–x{_num(high)})"


def pool_knee(values: Mapping[str, Any]) -> Knee | None:
    """The sweep's knee as notebook 03 recorded it (max_size and the client count it is read at)."""
    if values.get("knee_max_size") is None:
        return None
    return Knee(int(values["knee_max_size"]), values.get("knee_clients"))


def index_finding(values: Mapping[str, Any], latency: pd.DataFrame | None) -> Finding | None:
    winners = values.get("winners") or {}
    if not winners:
        return None
    parts = []
    for query, strategy in winners.items():
        text = f"{query}: {strategy}"
        if latency is not None and {"query", "strategy"} <= set(latency.columns):
            q = latency[latency["query"] == query].set_index("strategy")
            if "none" in q.index and strategy in q.index and strategy != "none":
                base, best = q.loc["none"], q.loc[strategy]
                speedup = float(base.p50_ms) / float(best.p50_ms) if best.p50_ms else None
                if speedup is not None:
                    text += f" x{_num(speedup)} faster than no index"
                    text += interval_text(ratio_interval(base, best))
        parts.append(text)
    sentence = "Fastest strategy per query: " + "; ".join(parts) + "."
    ingest = values.get("ingest_rows_per_s") or {}
    if ingest and ingest.get("none"):
        costs = ", ".join(
            f"{s} {_num(r)} rows/s (x{_num(r / ingest['none'])})"
            for s, r in ingest.items()
            if s != "none"
        )
        sentence += f" On ingest, against {_num(ingest['none'])} rows/s without indexes: {costs}."
    return Finding("Which indexes, for which queries, at what ingest cost?", sentence)


def pool_finding(values: Mapping[str, Any]) -> Finding | None:
    knee = pool_knee(values)
    if knee is None:
        return None
    sentence = (
        f"Through the service's client (psycopg_pool), throughput stops growing at {knee.text()}; "
        f"the service runs max_size 25."
    )
    closed = [
        f"{engine} {values[f'capacity_knee_{engine}']}"
        for engine in ("pgbench", "python")
        if values.get(f"capacity_knee_{engine}") is not None
    ]
    if closed:
        sentence += (
            " The server's closed loop (as many clients as connections, a different question) "
            f"stops growing at {', '.join(closed)} connections."
        )
    return Finding("Which pool size for the service's client, and why?", sentence)


def columnstore_finding(values: Mapping[str, Any], queries: pd.DataFrame | None) -> Finding | None:
    state = values.get("columnstore")
    if state is None:
        return None
    question = "What does the columnstore give, and what does it cost?"
    if state != "measured":
        return Finding(question, f"Not measured: {state}.")
    setting = values.get("columnstore_setting")
    parts = [f"with {setting}: compression x{_num(values.get('compression_ratio_recommended', 0))}"]
    for key, word in (("analytics_speedup", "faster"), ("point_lookup_slowdown", "slower")):
        for query, factor in (values.get(key) or {}).items():
            if factor is None:
                continue
            text = f"{query} x{_num(factor)} {word}"
            if queries is not None and {"setting", "query"} <= set(queries.columns):
                from ibcbench.bench.columnstore import BASELINE

                q = queries[queries["query"] == query].set_index("setting")
                if BASELINE in q.index and setting in q.index:
                    pair = (q.loc[BASELINE], q.loc[setting])
                    interval = ratio_interval(*(pair if word == "faster" else pair[::-1]))
                    text += interval_text(interval)
            parts.append(text)
    row, col = values.get("ingest_rows_per_s_rowstore"), values.get("ingest_rows_per_s_columnstore")
    if row and col:
        parts.append(f"ingest {_num(col)} rows/s against {_num(row)} rows/s in the rowstore")
    return Finding(question, "; ".join(parts) + ".")


def health_finding(values: Mapping[str, Any], alerts: pd.DataFrame | None) -> Finding | None:
    if values.get("health_worst_chain") is None:
        return None
    window = window_text(values.get("health_window_days"))
    sentence = (
        f"Network health ({window}): worst {values['health_worst_chain']} "
        f"({_num(values['health_worst'])}), best {values.get('health_best_chain')} "
        f"({_num(values.get('health_best', 0))})"
    )
    if alerts is not None and "monitor" in alerts.columns:
        flagged = sorted(set(alerts[alerts.monitor == "health_score"].chain_id))
        sentence += f"; graded below healthy: {', '.join(flagged) or 'none'}"
    monitors = []
    for m in ("health_score", "stuck_packets", "long_running_queries"):
        hits, misses = values.get(f"monitor_{m}_hits"), values.get(f"monitor_{m}_misses")
        if hits is not None and misses is not None:
            false = values.get(f"monitor_{m}_false_alarms", 0)
            monitors.append(f"{m} found {hits} of {hits + misses} ({false} false alarms)")
    if monitors:
        sentence += ". Planted trouble: " + "; ".join(monitors)
    return Finding(
        "Which chains are unhealthy, and which monitors found the planted trouble?", sentence + "."
    )


def health_card(values: Mapping[str, Any]) -> str | None:
    if values.get("health_worst_chain") is None:
        return None
    return (
        f"{values['health_worst_chain']} · {_num(values['health_worst'])} "
        f"({window_text(values.get('health_window_days'))})"
    )


def failure_finding(recorded: Recorded, notebooks: list[Mapping[str, Any]]) -> Finding:
    lines = [
        f"notebook {n['notebook']} failed: {n.get('error') or 'no error recorded'}"
        for n in notebooks
        if not n.get("ok", True)
    ]
    jobs = (
        ("05", "cagg_policy", "continuous-aggregate refresh policy"),
        ("05", "columnstore_policy", "columnstore policy"),
    )
    for prefix, key, name in jobs:
        values = recorded.get(prefix, {})
        failures = values.get(f"{key}_failures")
        if failures:
            cause = values.get(f"{key}_error") or "job_errors holds no message for it"
            lines.append(
                f"the TimescaleDB {name} job failed {failures} of {values.get(f'{key}_runs')} "
                f"run(s): {cause}"
            )
    faults = next((v for v in recorded.values() if v.get("faults_injected") is not None), None)
    if faults and faults.get("faults_survived") != faults["faults_injected"]:
        lines.append(
            f"{faults['faults_injected'] - (faults.get('faults_survived') or 0)} of "
            f"{faults['faults_injected']} faults were not survived"
        )
    return Finding("What failed, and why?", ("; ".join(lines) or "nothing failed") + ".")


def findings(
    recorded: Recorded,
    frames: Mapping[str, pd.DataFrame],
    notebooks: list[Mapping[str, Any]],
) -> list[Finding]:
    """Every question's sentence, in the suite's order; questions without results are left out."""
    got = [
        index_finding(recorded.get("02", {}), frames.get("index_latency")),
        pool_finding(recorded.get("03", {})),
        columnstore_finding(recorded.get("05", {}), frames.get("ts_columnstore_queries")),
        health_finding(recorded.get("06", {}), frames.get("maint_incident_alerts")),
        failure_finding(recorded, notebooks),
    ]
    return [f for f in got if f is not None]
