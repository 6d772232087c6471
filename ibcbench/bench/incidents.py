"""The planted incidents next to what each monitor reported: hits, misses and false alarms.

The generator plants chain halts, relayer outages, congestion and client expiries
(:mod:`data_gen.incidents`); the loader keeps the manifest's list in ``ibcbench_incidents``.
:func:`incident_timeline` reads them back, :func:`score_monitors` runs each monitor and scores it:

- ``health_score``: ``calculate_network_health_score`` over the whole data span; a chain graded other
  than healthy is an alert. It watches every kind: a hit is an incident whose chain is flagged, a
  false alarm a flagged chain without an incident.
- ``stuck_packets`` (:func:`ibcbench.toolkit.monitoring.stuck_packets`): channel hours with stuck
  packets. It is meant to find relayer outages (the kind that strands packets); an alert matches an
  incident of any kind on that channel (or, for a chain-wide one, either end's chain) within an hour
  of its window, and an alert matching none is a false alarm.
- ``long_running_queries``: it watches sessions, not traffic, so its planted trouble is a session: a
  statement held open for ``long_query_s`` (as a stuck report would be), which it must find while
  flagging nothing else in this database.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from ibcbench.data.load import INCIDENT_FIELDS
from ibcbench.db import connect, query_frame
from ibcbench.results.metrics.metric import Metric, informational
from ibcbench.results.recorded import run_folder, save_figure
from ibcbench.results.runs import Run
from ibcbench.toolkit.monitoring import long_running_queries, stuck_packets

PLANTED_QUERY_APP = "ibcbench-planted-long-query"
KIND_COLORS = {
    "chain_halt": "#c62828",
    "relayer_outage": "#6a1b9a",
    "congestion": "#e08a00",
    "client_expiry": "#1565c0",
}
MATCH_SLACK = pd.Timedelta(hours=1)  # an alert up to an hour either side of an incident is about it


def incident_timeline(dsn: str | None) -> pd.DataFrame:
    """The planted incidents as stored at load (``ibcbench_incidents``), in start order."""
    with connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('ibcbench_incidents')").fetchone()[0] is None:  # type: ignore[index]
            return pd.DataFrame(columns=_INCIDENT_COLUMNS)
        frame = query_frame(
            conn,
            "SELECT id, kind, chain_id, channel_id, counterparty_chain_id, counterparty_channel_id,"
            " relayer, started_at, ended_at,"
            " extract(epoch FROM ended_at - started_at) / 3600.0 AS hours"
            " FROM ibcbench_incidents ORDER BY started_at, id",
        )
    frame["hours"] = frame["hours"].astype(float).round(2)
    for column in ("channel_id", "counterparty_chain_id", "counterparty_channel_id", "relayer"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


_INCIDENT_COLUMNS = ["id", *INCIDENT_FIELDS, "started_at", "ended_at", "hours"]


@dataclass(frozen=True)
class MonitorScoreResult:
    """Incidents, every monitor's alerts (matched to incidents) and the scores per monitor."""

    incidents: pd.DataFrame
    alerts: pd.DataFrame  # monitor, chain_id, channel, start, end, detail, incident_ids
    scores: pd.DataFrame  # monitor, watches, targets, hits, misses, false_alarms
    health: pd.DataFrame  # calculate_network_health_score with had_incident and rank
    span: tuple[Any, Any] = (None, None)  # first and last hour of the data
    window_days: int | None = None  # the health score's window (the data span, in days)

    def score(self, monitor: str) -> dict[str, int]:
        row = self.scores.set_index("monitor").loc[monitor]
        return {k: int(row[k]) for k in ("targets", "hits", "misses", "false_alarms")}

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational("incidents_planted", "incidents", "set by the seed and the span"),
        *(
            informational(f"incidents_{kind}", "incidents", "set by the seed and the span")
            for kind in ("chain_halt", "relayer_outage", "congestion", "client_expiry")
        ),
        *(
            Metric(
                f"monitor_{m}_hits", "higher", "incidents", note=f"incidents the {m} monitor found"
            )
            for m in ("health_score", "stuck_packets", "long_running_queries")
        ),
        *(
            Metric(
                f"monitor_{m}_misses",
                "lower",
                "incidents",
                note=f"incidents the {m} monitor missed",
            )
            for m in ("health_score", "stuck_packets", "long_running_queries")
        ),
        *(
            Metric(
                f"monitor_{m}_false_alarms", "lower", "alerts", note=f"{m} alerts about no incident"
            )
            for m in ("health_score", "stuck_packets", "long_running_queries")
        ),
        # the health table's figures, made when it has rows
        informational("health_best", "points", "the healthiest chain's score", optional=True),
        informational(
            "health_window_days", "days", "the health score's window: the data span", optional=True
        ),
        informational("health_best_chain", "", "a chain id", optional=True),
        informational("health_worst", "points", "the least healthy chain's score", optional=True),
        informational("health_worst_chain", "", "a chain id", optional=True),
        Metric(
            "health_spread",
            "higher",
            "points",
            0.25,
            2.0,
            note="best minus worst health score: the score separates incident chains from the rest",
            optional=True,
        ),
        informational("incident_chains", "chains", "chains that had an incident", optional=True),
        informational(
            "incident_chain_ranks", "", "their ranks from the bottom (a list)", optional=True
        ),
        Metric(
            "incident_chains_rank_lowest",
            "higher",
            "",
            note="True expected: incident chains score lowest",
            optional=True,
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        h = self.health
        numbers: dict[str, Any] = {"incidents_planted": len(self.incidents)}
        for kind in KIND_COLORS:
            numbers[f"incidents_{kind}"] = int((self.incidents.kind == kind).sum())
        for row in self.scores.itertuples():
            for k in ("hits", "misses", "false_alarms"):
                numbers[f"monitor_{row.monitor}_{k}"] = int(getattr(row, k))
        if len(h):
            scores = h.health_score.astype(float)
            numbers.update(
                health_window_days=self.window_days,
                health_best=float(scores.max()),
                health_best_chain=str(h.chain_id.iloc[scores.argmax()]),
                health_worst=float(scores.min()),
                health_worst_chain=str(h.chain_id.iloc[scores.argmin()]),
                health_spread=round(float(scores.max() - scores.min()), 2),
                incident_chains=int(h.had_incident.sum()),
                incident_chain_ranks=sorted(int(r) for r in h["rank"][h.had_incident]),
                incident_chains_rank_lowest=bool(
                    h.had_incident.any()
                    and (~h.had_incident).any()
                    and scores[h.had_incident].max() < scores[~h.had_incident].min()
                ),
            )
        return numbers

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write ``maint_incidents``, ``maint_incident_alerts``, ``maint_monitor_scores`` and the
        timeline figure into the run folder (nothing without one)."""
        run = run_folder(run_dir)
        if run is None:
            return
        run.write_frame(
            "maint_incidents", self.incidents.astype({"started_at": str, "ended_at": str})
        )
        run.write_frame("maint_incident_alerts", self.alerts.astype(str))
        run.write_frame("maint_monitor_scores", self.scores)
        save_figure(self.plot(), "06_incident_timeline", run, close=True)

    def plot(self) -> Any:
        """The incidents on a timeline, one row per chain involved, with each monitor's alerts."""
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch

        inc, alerts = self.incidents, self.alerts
        chains = list(dict.fromkeys(list(inc.chain_id) + list(alerts.chain_id)))
        health = self.health.set_index("chain_id") if len(self.health) else None
        fig, ax = plt.subplots(figsize=(11, 0.45 * max(len(chains), 3) + 2))
        row = {c: i for i, c in enumerate(chains)}
        for r in inc.itertuples():
            start, end = pd.Timestamp(r.started_at), pd.Timestamp(r.ended_at)
            ax.barh(
                row[r.chain_id],
                end - start,
                left=start,
                height=0.5,
                color=KIND_COLORS[r.kind],
                alpha=0.85,
            )
        stuck = alerts[alerts.monitor == "stuck_packets"]
        if len(stuck):
            ax.scatter(
                pd.to_datetime(stuck.start) + pd.Timedelta(minutes=30),
                [row[c] + 0.32 for c in stuck.chain_id],
                marker="v",
                color="black",
                s=18,
                label="stuck_packets alert",
                zorder=3,
            )
        labels = []
        for c in chains:
            label = c
            if health is not None and c in health.index:
                label += f"  ({float(health.loc[c, 'health_score']):.0f}, {health.loc[c, 'grade']})"
            labels.append(label)
        ax.set_yticks(range(len(chains)), labels)
        ax.invert_yaxis()
        handles: list[Any] = [Patch(color=v, label=k) for k, v in KIND_COLORS.items()]
        if len(stuck):
            handles.append(ax.collections[0])
        ax.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=5, fontsize=8
        )
        s = self.scores.set_index("monitor")
        ax.set_title(
            "Planted incidents and the monitors (chain: health score, grade; "
            f"{window_text(self.window_days)}). "
            + "; ".join(
                f"{m}: {int(r.hits)}/{int(r.targets)} found, {int(r.false_alarms)} false"
                for m, r in s.iterrows()
            ),
            fontsize=9,
        )
        if self.span[0] is not None:
            ax.set_xlim(
                pd.Timestamp(self.span[0]), pd.Timestamp(self.span[1]) + pd.Timedelta(hours=1)
            )
        fig.autofmt_xdate()
        fig.tight_layout()
        return fig


def window_text(days: int | None) -> str:
    """How a figure or a sentence names the health score's window."""
    return "window unknown" if days is None else f"whole data span, {days} days"


def data_days(conn: Any) -> int:
    """The data span in days: the window every health score of the report is computed over."""
    row = conn.execute("SELECT min(date), max(date) FROM network_stats").fetchone()
    if row is None or row[0] is None:
        return 1
    return int((row[1] - row[0]).days) + 1


def _health_alerts(conn: Any, inc: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    days = data_days(conn)
    health = query_frame(conn, "SELECT * FROM calculate_network_health_score(NULL, %s)", (days,))
    health.attrs["window_days"] = days
    health["had_incident"] = health.chain_id.isin(set(inc.chain_id))
    health["rank"] = health.health_score.astype(float).rank(method="min").astype(int)
    flagged = health[health.grade != "healthy"]
    alerts = pd.DataFrame(
        {
            "monitor": "health_score",
            "chain_id": flagged.chain_id,
            "channel": None,
            "start": pd.NaT,
            "end": pd.NaT,
            "detail": [
                f"score {float(s):.1f} ({g}), {int(t)} hours in trouble"
                for s, g, t in zip(
                    flagged.health_score, flagged.grade, flagged.trouble_hours, strict=True
                )
            ],
            "incident_ids": [[int(i) for i in inc.id[inc.chain_id == c]] for c in flagged.chain_id],
        }
    )
    return health, alerts


def _stuck_alerts(conn: Any, inc: pd.DataFrame) -> pd.DataFrame:
    found = stuck_packets(conn)
    rows = []
    for a in found.itertuples():
        start = pd.Timestamp(a.hour)
        end = start + pd.Timedelta(hours=1)
        ends = {(a.chain_a, a.channel_a), (a.chain_b, a.channel_b)}
        ids = []
        for i in inc.itertuples():
            if not (
                pd.Timestamp(i.started_at) - MATCH_SLACK <= end
                and start <= pd.Timestamp(i.ended_at) + MATCH_SLACK
            ):
                continue
            if i.channel_id is not None:
                about = (i.chain_id, i.channel_id) in ends
            else:
                about = i.chain_id in (a.chain_a, a.chain_b)
            if about:
                ids.append(int(i.id))
        # the alert is about the spoke of its channel when an incident names it, else its first end
        chain = next((c for c in (a.chain_a, a.chain_b) if c in set(inc.chain_id)), a.chain_a)
        rows.append(
            {
                "monitor": "stuck_packets",
                "chain_id": chain,
                "channel": f"{a.chain_a} {a.channel_a} <-> {a.chain_b} {a.channel_b}",
                "start": start,
                "end": end,
                "detail": f"{int(a.stuck)} stuck of {int(a.sent)} ({float(a.stuck_pct):.1f}%)",
                "incident_ids": ids,
            }
        )
    return pd.DataFrame(rows, columns=_ALERT_COLUMNS)


_ALERT_COLUMNS = ["monitor", "chain_id", "channel", "start", "end", "detail", "incident_ids"]


def _long_query_alerts(dsn: str | None, long_query_s: float) -> tuple[pd.DataFrame, int, int]:
    """Plant a long statement, run the monitor, cancel it: (alerts, planted pid found?, false alarms)."""
    started = threading.Event()
    with connect(dsn, autocommit=True) as planted:
        planted.execute("SELECT set_config('application_name', %s, false)", (PLANTED_QUERY_APP,))
        pid = planted.info.backend_pid
        errors: list[BaseException] = []

        def hold() -> None:
            started.set()
            try:
                planted.execute("SELECT pg_sleep(%s)", (long_query_s * 4 + 5,))
            except Exception as exc:  # cancelled below, as intended
                errors.append(exc)

        worker = threading.Thread(target=hold, name="ibcbench-planted-query", daemon=True)
        worker.start()
        started.wait(5)
        time.sleep(long_query_s + 0.5)
        with connect(dsn, autocommit=True) as conn:
            found = long_running_queries(conn, min_duration_s=long_query_s)
            conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
            mine = found[found.datname == conn.info.dbname]
        worker.join(10)
    hit = int((mine.pid == pid).any())
    others = mine[mine.pid != pid]
    alerts = pd.DataFrame(
        {
            "monitor": "long_running_queries",
            "chain_id": None,
            "channel": None,
            "start": pd.NaT,
            "end": pd.NaT,
            "detail": [f"pid {p}: {q}" for p, q in zip(mine.pid, mine["query"], strict=True)],
            "incident_ids": [[-1] if p == pid else [] for p in mine.pid],
        },
        columns=_ALERT_COLUMNS,
    )
    return alerts, hit, len(others)


def score_monitors(dsn: str | None, *, long_query_s: float = 1.0) -> MonitorScoreResult:
    """Run each monitor on the dataset and count hits, misses and false alarms against the incidents."""
    inc = incident_timeline(dsn)
    with connect(dsn) as conn:
        health, health_alerts = _health_alerts(conn, inc)
        stuck_alerts = _stuck_alerts(conn, inc)
        span = conn.execute("SELECT min(hour), max(hour) FROM channel_performance").fetchone()
    long_alerts, long_hit, long_false = _long_query_alerts(dsn, long_query_s)

    def tally(alerts: pd.DataFrame, targets: pd.DataFrame) -> tuple[int, int, int, int]:
        matched = {i for ids in alerts.incident_ids for i in ids}
        hits = int(targets.id.isin(matched).sum())
        false_alarms = int(sum(1 for ids in alerts.incident_ids if not ids))
        return len(targets), hits, len(targets) - hits, false_alarms

    outages = inc[inc.kind == "relayer_outage"]
    rows = [
        ("health_score", "every kind (chains graded below healthy)", *tally(health_alerts, inc)),
        (
            "stuck_packets",
            "relayer_outage (channel hours with stuck packets)",
            *tally(stuck_alerts, outages),
        ),
        (
            "long_running_queries",
            "a planted long statement (sessions, not traffic)",
            1,
            long_hit,
            1 - long_hit,
            long_false,
        ),
    ]
    scores = pd.DataFrame(
        rows, columns=["monitor", "watches", "targets", "hits", "misses", "false_alarms"]
    )
    alerts = pd.concat(
        [a for a in (health_alerts, stuck_alerts, long_alerts) if len(a)]
        or [pd.DataFrame(columns=_ALERT_COLUMNS)],
        ignore_index=True,
    )
    return MonitorScoreResult(
        inc,
        alerts,
        scores,
        health,
        tuple(span) if span else (None, None),
        window_days=int(health.attrs.get("window_days", 0)) or None,
    )
