"""One self-contained HTML report per run folder: ``runs/<id>/report.html``.

Sections: a summary (cards), the manifest (server, edition, settings, extensions, versions), one
section per executed notebook (its recorded key numbers, its figures embedded as data URIs, its
result tables, a link to the executed .ipynb), plan diffs when the run holds captured plans, and,
with a baseline run, every shared number compared by its direction and noise
(:mod:`ibcbench.results.metrics`), the workload latencies compared with
:func:`~ibcbench.results.compare.compare_runs`, and what was not compared and why.

The page is rendered from the Jinja2 templates in ``templates/`` with autoescaping on: this
module prepares plain values (formatted text, data URIs), the templates escape every one of them.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ibcbench import __version__
from ibcbench.bench.explain import DIFF_HTML
from ibcbench.errors import ConfigError, RunError
from ibcbench.results.compare import compare_runs
from ibcbench.results.metrics import Metric, MetricDiff, compare_recorded
from ibcbench.results.recorded import read_recorded
from ibcbench.results.runs import Run
from ibcbench.suite import findings as findings_
from ibcbench.suite.pagetables import fmt, result_table, table

#: result tables shown under the notebook that wrote them (by name prefix)
RESULT_OWNERS = {
    "01": (),
    "02": ("index_",),
    "03": ("pool_", "connection_paths"),
    "04": ("plan",),
    "05": ("ts_",),
    "06": ("maint_",),
    "07": ("replica_",),
    "08": ("faults",),
}
#: result tables shown whole, though folded like the others (which show 40 rows at most)
#: recorded numbers shown as summary cards, with their labels
HIGHLIGHTS = {
    "wallet_history_speedup": "wallet index speed-up (x)",
    "rows_packet_flow": "packets loaded",
    "load_rows_per_s": "load rows/s",
}
#: the manifest's timescaledb_edition as a reader knows it
EDITIONS = {"timescale": "Community", "apache": "Apache"}
#: the result tables the findings read intervals and alerts from
FINDING_FRAMES = ("index_latency", "ts_columnstore_queries", "maint_incident_alerts")


def _notebook_sections(run: Run) -> list[dict[str, Any]]:
    manifest = run.manifest()
    status = {n["notebook"]: n for n in manifest.get("notebooks", [])}
    sections = []
    for nb in sorted(run.path.glob("[0-9][0-9]_*.ipynb")):
        prefix = nb.name[:2]
        info = status.get(nb.name, {})
        title = nb.stem[3:].replace("_", " ").capitalize()
        try:
            intro = json.loads(nb.read_text())["cells"][0]["source"]
            intro = "".join(intro) if isinstance(intro, list) else intro
            intro = "\n".join(
                line for line in intro.splitlines() if not line.startswith("#")
            ).strip()
        except (KeyError, IndexError, json.JSONDecodeError):
            intro = ""
        owners = RESULT_OWNERS.get(prefix)
        sections.append(
            {
                "id": f"nb{prefix}",
                "prefix": prefix,
                "title": f"{prefix} · {title}",
                "path": nb,
                "recorded": read_recorded(nb),
                "ok": info.get("ok", True),
                "error": info.get("error"),
                "elapsed_s": info.get("elapsed_s"),
                "intro": intro,
                "figures": sorted((run.path / "figures").glob(f"{prefix}_*.png")),
                "results": [n for n in run.frames() if n.startswith(owners)] if owners else [],
            }
        )
    return sections


@dataclass(frozen=True)
class BaselineDiff:
    """A run against a baseline run: recorded numbers, workload latencies, notebooks."""

    baseline: str
    candidate: str
    metrics: list[MetricDiff]
    #: compare_runs' frame, when both runs hold workload latencies
    latency: pd.DataFrame | None = None
    #: why the latencies were not compared (e.g. a run has none)
    latency_note: str | None = None
    #: the latency comparison failed: the gate fails too, since it could not look
    latency_error: str | None = None
    #: notebooks that ran in the baseline and failed in this run
    notebook_failures: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricDiff]:
        return [d for d in self.metrics if d.verdict == "regression"]

    @property
    def compared(self) -> list[MetricDiff]:
        return [d for d in self.metrics if d.compared]

    @property
    def not_compared(self) -> list[MetricDiff]:
        return [d for d in self.metrics if not d.compared]

    def failure_lines(self) -> list[str]:
        """One line per regression (numbers, latencies), failed notebook, or failed comparison."""
        lines = [d.line() for d in self.regressions]
        if self.latency is not None and "verdict" in self.latency:
            for row in self.latency[self.latency.verdict == "slower"].to_dict("records"):
                lines.append(
                    f"regression: workload {row.get('query')} p50 {row.get('baseline_p50_ms')}"
                    f" -> {row.get('candidate_p50_ms')} ms (x{row.get('ratio')},"
                    f" 95% CI {row.get('ci_low')}-{row.get('ci_high')})"
                )
        lines += [f"failed: {line}" for line in self.notebook_failures]
        if self.latency_error:
            lines.append(f"error: the workload latency comparison failed: {self.latency_error}")
        return lines

    def summary(self) -> str:
        """One line: how many numbers were compared, with what verdicts, and what was not."""
        verdicts = Counter(d.verdict for d in self.compared)
        reasons = Counter(d.detail.split(":")[0] for d in self.not_compared)
        text = (
            f"{len(self.compared)} compared ({verdicts['regression']} regression(s), "
            f"{verdicts['improvement']} improvement(s), {verdicts['same']} within noise); "
            f"{len(self.not_compared)} not compared"
        )
        if reasons:
            text += " (" + ", ".join(f"{n} {why}" for why, n in sorted(reasons.items())) + ")"
        if self.latency is not None:
            verdicts_ = self.latency.get("verdict", pd.Series(dtype=str))
            slower = int((verdicts_ == "slower").sum())
            text += f"; workload latency: {len(self.latency)} queries compared, {slower} slower"
        elif self.latency_error:
            text += f"; workload latency comparison failed: {self.latency_error}"
        elif self.latency_note:
            text += f"; workload latency not compared: {self.latency_note}"
        return text

    def listing(self) -> list[str]:
        """Which metrics were compared, and which were not grouped by why."""
        lines = [
            f"compared ({len(self.compared)}): "
            + (", ".join(f"{d.notebook} {d.key}" for d in self.compared) or "none")
        ]
        groups: dict[str, list[str]] = {}
        for d in self.not_compared:
            groups.setdefault(d.detail.split(":")[0], []).append(f"{d.notebook} {d.key}")
        for why, names in sorted(groups.items()):
            lines.append(f"not compared, {why} ({len(names)}): " + ", ".join(names))
        return lines


def compare_with_baseline(
    run: Run, baseline: Run, *, metrics: Mapping[str, Metric]
) -> BaselineDiff:
    """Compare ``run`` with ``baseline``: recorded numbers (each by its metric in ``metrics``,
    :func:`ibcbench.metrics.all_metrics` in the kit), workload latencies, notebook status. A run
    is refused as its own baseline."""
    if run.path.resolve() == baseline.path.resolve():
        raise ConfigError(
            f"--baseline {baseline.id} is the run itself: give an earlier run to compare with"
        )
    current = {s["prefix"]: s["recorded"] for s in _notebook_sections(run)}
    base = {s["prefix"]: s["recorded"] for s in _notebook_sections(baseline)}
    diffs = compare_recorded(base, current, metrics=metrics)
    latency, note, error = None, None, None
    if "workload_latencies" in run.frames() or "workload_latencies" in baseline.frames():
        try:
            latency = compare_runs(baseline, run).frame
        except RunError as exc:  # one run without workload latencies, or none shared
            note = str(exc)
        except Exception as exc:  # a failure is shown, never swallowed
            error = f"{type(exc).__name__}: {exc}"
    ran = {n["notebook"] for n in baseline.manifest().get("notebooks", []) if n.get("ok", True)}
    failed = [
        f"{n['notebook']}: {n.get('error') or 'failed'}"
        for n in run.manifest().get("notebooks", [])
        if not n.get("ok", True) and n["notebook"] in ran
    ]
    return BaselineDiff(baseline.id, run.id, diffs, latency, note, error, failed)


def _baseline_context(diff: BaselineDiff) -> dict[str, Any]:
    def row(d: MetricDiff) -> dict[str, Any]:
        return {
            "notebook": d.notebook,
            "value": d.key,
            "baseline": d.baseline,
            "this run": d.current,
            "unit": d.unit,
        }

    compared = [
        {
            **row(d),
            "change": d.detail,
            "noise": d.metric.noise_text if d.metric else "",
            "better": d.metric.better if d.metric else "",
            "flag": d.verdict if d.verdict != "same" else "",
        }
        for d in diff.compared
    ]
    classes = [
        {"regression": "regression", "improvement": "improvement"}.get(d.verdict, "")
        for d in diff.compared
    ]
    latency = None
    if diff.latency is not None:
        lat_classes = [
            "regression" if v == "slower" else "improvement" if v == "faster" else ""
            for v in diff.latency.get("verdict", [])
        ]
        latency = table(diff.latency, limit=500, classes=lat_classes)
    return {
        "id": diff.baseline,
        "failures": len(diff.failure_lines()),
        "summary": diff.summary(),
        "notebook_failures": diff.notebook_failures,
        "compared": table(compared, limit=1000, classes=classes),
        "not_compared": table([{**row(d), "why": d.detail} for d in diff.not_compared], limit=1000),
        "latency": latency,
        "latency_note": diff.latency_note,
        "latency_error": diff.latency_error,
    }


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ibcbench.suite", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def build_report(
    run: Run, *, diff: BaselineDiff | None = None, metrics: Mapping[str, Metric] | None = None
) -> Path:
    """Write ``report.html`` into the run folder and return its path.

    With ``diff`` (:func:`compare_with_baseline` against another run) the page compares the two.
    ``metrics`` (:func:`ibcbench.metrics.all_metrics` in the kit) gives the key numbers their units.
    """
    manifest = run.require_manifest()
    sections = _notebook_sections(run)
    fault_run = None if any(s["prefix"] == "08" for s in sections) else latest_fault_run(run)
    recorded = {s["prefix"]: s["recorded"] for s in sections}
    if manifest.get("faults") is not None:  # a fault-suite run: its key numbers are the manifest's
        recorded["08"] = manifest.get("key_numbers") or {}
    frames = {n: run.read_frame(n) for n in FINDING_FRAMES if n in run.frames()}
    fault_suite = _fault_suite_context(fault_run) if fault_run is not None else None
    settings = manifest.get("settings") or {}
    plans_html = run.path / DIFF_HTML
    context = {
        "run_id": run.id,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "cards": _cards(manifest, sections, recorded, fault_suite),
        "findings": findings_.findings(recorded, frames, manifest.get("notebooks", [])),
        "fault_results": (
            [result_table(run, name) for name in run.frames()]
            if manifest.get("faults") is not None
            else []
        ),
        "manifest_table": table(_server_rows(run, manifest)),
        "settings_count": len(settings),
        "settings_table": table(
            [{"setting": k, "value": v} for k, v in settings.items()], limit=500
        ),
        "baseline": _baseline_context(diff) if diff is not None else None,
        "sections": [_section_context(run, s, metrics or {}) for s in sections],
        "plans_html": plans_html.read_text() if plans_html.exists() else None,
        "fault_suite": fault_suite,
    }
    try:
        page = _environment().get_template("report.html.j2").render(context)
    except jinja2.TemplateError as exc:
        raise RunError(f"the report template cannot be rendered: {exc}") from exc
    return run.replace_file("report.html", page)


def _cards(
    manifest: Mapping[str, Any],
    sections: list[dict[str, Any]],
    recorded: Mapping[str, Mapping[str, Any]],
    fault_suite: dict[str, Any] | None,
) -> list[tuple[str, str]]:
    """The cards at the top: the run, the server, and the headline numbers (the pool knee and the
    least healthy chain as the findings state them)."""
    ok = sum(1 for s in sections if s["ok"])
    cards = [
        (
            ("fault suite", "run by `ibcbench bench faults`")
            if manifest.get("faults") is not None
            else ("notebooks", f"{ok} / {len(sections)} ok")
        ),
        ("scale · seed", f"{manifest.get('scale', '–')} · {manifest.get('seed', '–')}"),
        ("run time", f"{manifest.get('run_all_elapsed_s', '–')} s"),
        ("server", str(manifest.get("server_version", "–")).split(" ")[0]),
        ("timescaledb", timescaledb_card(manifest)),
    ]
    knee = findings_.pool_knee(recorded.get("03", {}))
    if knee is not None:
        cards.append(("pool knee", knee.short()))
    health = findings_.health_card(recorded.get("06", {}))
    if health is not None:
        cards.append(("least healthy chain", health))
    for s in sections:
        got = s["recorded"]
        if got.get("faults_injected") is not None:
            cards.append(
                (
                    "faults survived",
                    f"{got.get('faults_survived')} / {got['faults_injected']} · "
                    f"{got.get('faults_rows_lost')} rows lost · "
                    f"{got.get('faults_bad_inputs_rejected')} bad inputs rejected",
                )
            )
        for key, label in HIGHLIGHTS.items():
            if got.get(key) is not None:
                value = got[key]
                cards.append((label, f"{value:,.1f}" if isinstance(value, float) else fmt(value)))
    if fault_suite is not None:
        cards.append((f"faults survived · {fault_suite['date']}", fault_suite["card"]))
    return cards


def _server_rows(run: Run, manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The manifest's server and run part, as rows of the report's table."""
    return [
        {"item": "run", "value": run.id},
        {"item": "target", "value": manifest.get("target")},
        {"item": "PostgreSQL", "value": manifest.get("server_version")},
        {"item": "TimescaleDB", "value": manifest.get("timescaledb")},
        {"item": "extensions", "value": manifest.get("extensions")},
        {"item": "schema version", "value": manifest.get("schema_version")},
        {"item": "machine", "value": manifest.get("machine")},
        {
            "item": "ibcbench",
            "value": f"{manifest.get('ibcbench_version', __version__)} ({manifest.get('git_commit') or 'no git'})",
        },
        {"item": "parameters", "value": manifest.get("parameters")},
    ]


def latest_fault_run(run: Run) -> Run | None:
    """The newest fault-suite run beside ``run`` (``<stamp>-faults-<scale>`` in the same runs
    folder, complete, with ``results/faults.parquet``): ``run-all`` does not run the fault suite,
    ``ibcbench bench faults`` does, on a cluster of its own on this machine. None when there is none."""
    folders = sorted(run.path.parent.glob("*-faults-*"), reverse=True)
    for folder in folders:
        candidate = Run(folder)
        if folder == run.path or not (folder / "results" / "faults.parquet").is_file():
            continue
        try:
            if candidate.manifest().get("status") == "complete":
                return candidate
        except RunError:  # an unreadable manifest: not a result to show
            continue
    return None


def _fault_suite_context(fault_run: Run) -> dict[str, Any]:
    """The latest fault-suite result for the report: its run, date, scale, numbers and table."""
    manifest = fault_run.manifest()
    created = str(manifest.get("created_at") or "")
    try:
        date = datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        date = created or "unknown date"
    got = manifest.get("key_numbers") or {}
    card = (
        f"{got.get('faults_survived')} / {got.get('faults_injected')} · "
        f"{got.get('faults_rows_lost')} rows lost · "
        f"{got.get('faults_bad_inputs_rejected')} bad inputs rejected"
    )
    frame = fault_run.read_frame("faults")
    classes = (
        ["regression" if v != "survived" else "" for v in frame["verdict"]]
        if "verdict" in frame.columns
        else None
    )
    suite = manifest.get("faults") or {}
    version = suite.get("server_version")  # libpq's number: 150010 is 15.10
    if isinstance(version, int):
        version = f"{version // 10000}.{version % 10000}"
    return {
        "run_id": fault_run.id,
        "date": date,
        "scale": manifest.get("scale"),
        "server_version": version,
        "card": card,
        "recorded": table([{"name": k, "value": v} for k, v in got.items()]),
        "table": table(frame, limit=len(frame), classes=classes),
    }


def timescaledb_card(manifest: Mapping[str, Any]) -> str:
    """The TimescaleDB version and edition, and the build's patches when the manifest has them."""
    build = manifest.get("timescaledb_build") or {}
    version = manifest.get("timescaledb_version") or build.get("version")
    if version is None:
        found = re.search(r"\d+\.\d+(?:\.\d+)?", str(manifest.get("timescaledb") or ""))
        version = found.group(0) if found else None
    edition = EDITIONS.get(
        str(manifest.get("timescaledb_edition")), manifest.get("timescaledb_edition")
    )
    if not version and not edition:
        return "none"
    text = " ".join(str(x) for x in (version, f"({edition})" if edition else None) if x)
    if build.get("patched"):
        text += " · patched: " + ", ".join(str(p) for p in build["patched"])
    return text


def figure_caption(path: Path) -> str:
    """The title :func:`~ibcbench.results.recorded.save_figure` wrote into the PNG, else its name."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            title = image.info.get("Title")
    except OSError:
        title = None
    return str(title) if title else path.stem


def _section_context(run: Run, s: dict[str, Any], metrics: Mapping[str, Metric]) -> dict[str, Any]:
    figures = [
        {
            "name": fig.stem,
            "title": figure_caption(fig),
            "data": base64.b64encode(fig.read_bytes()).decode(),
        }
        for fig in s["figures"]
    ]
    return {
        "id": s["id"],
        "title": s["title"],
        "ok": s["ok"],
        "error": s["error"],
        "elapsed_s": s["elapsed_s"],
        "intro": s["intro"],
        "recorded": table(
            [
                {"name": findings_.key_label(k, metrics), "value": v}
                for k, v in s["recorded"].items()
            ]
        ),
        "figures": figures,
        "results": [result_table(run, name) for name in s["results"]],
        "notebook": s["path"].name,
    }
