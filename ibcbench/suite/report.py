"""One self-contained HTML report per run folder: ``runs/<id>/report.html``.

Sections: a summary (cards), the manifest (server, edition, settings, extensions, versions), one
section per executed notebook (its recorded key numbers, its figures embedded as data URIs, its
result tables, a link to the executed .ipynb), plan diffs when the run holds captured plans, and,
with a baseline run, every shared number as a ratio (with a bootstrap CI for latency samples)
and regressions flagged.
"""

from __future__ import annotations

import base64
import html
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ibcbench import __version__
from ibcbench.bench.explain import DIFF_HTML
from ibcbench.results.recorded import read_recorded
from ibcbench.results.runs import Run

#: result tables shown under the notebook that wrote them (by name prefix)
RESULT_OWNERS = {
    "01": (),
    "02": ("index_",),
    "03": ("pool_",),
    "04": ("plan",),
    "05": ("ts_",),
    "06": ("maint_",),
}
HIGHER_IS_BETTER = ("speedup", "qps", "rows_per_s", "throughput", "ratio_", "gain", "health")

CSS = """
:root { --fg:#1d2330; --muted:#5c6679; --line:#e3e7ee; --bg:#f6f8fb; --ok:#2e7d32; --bad:#c62828; --accent:#2f5d9b; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color:var(--fg); background:var(--bg); }
header { background:#1f2a44; color:#fff; padding:28px 40px 22px; }
header h1 { margin:0 0 4px; font-size:26px; font-weight:600; }
header .sub { color:#c9d3e6; font-size:14px; }
main { max-width:1200px; margin:0 auto; padding:24px 40px 60px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(190px, 1fr)); gap:14px; margin:0 0 28px; }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:24px; font-weight:600; margin-top:2px; }
section { background:#fff; border:1px solid var(--line); border-radius:12px; padding:20px 24px; margin:0 0 22px; }
section h2 { margin:0 0 6px; font-size:20px; }
section h3 { font-size:15px; margin:18px 0 6px; color:var(--muted); font-weight:600; }
.status { display:inline-block; font-size:12px; padding:2px 8px; border-radius:999px; margin-left:8px; vertical-align:middle; }
.status.ok { background:#e6f4ea; color:var(--ok); } .status.failed { background:#fdecea; color:var(--bad); }
table { border-collapse:collapse; width:100%; font-size:13px; margin:6px 0 10px; }
th, td { text-align:left; padding:5px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; background:#fafbfd; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
tr.regression td { background:#fdecea; color:var(--bad); font-weight:600; }
tr.improvement td { background:#e6f4ea; }
img { max-width:100%; border:1px solid var(--line); border-radius:8px; margin:8px 0; }
a { color:var(--accent); } .muted { color:var(--muted); } .error { color:var(--bad); font-family:monospace; }
details summary { cursor:pointer; color:var(--accent); margin:6px 0; }
nav { margin:0 0 20px; font-size:14px; } nav a { margin-right:14px; }
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if 0 < abs(value) < 0.01:  # small ratios keep their digits: 0.000231, not 0
            return f"{value:.3g}"
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return "–" if value is None else str(value)


def _table(
    rows: list[dict[str, Any]] | pd.DataFrame, *, limit: int = 40, classes: list[str] | None = None
) -> str:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if frame.empty:
        return '<p class="muted">(empty)</p>'
    frame = frame.head(limit)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(
            f'<td class="num">{html.escape(_fmt(v))}</td>' if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{html.escape(_fmt(v))}</td>"
            for v in row
        )  # fmt: skip
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


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
        sections.append({
            "id": f"nb{prefix}", "prefix": prefix, "title": f"{prefix} · {title}", "path": nb,
            "recorded": read_recorded(nb), "ok": info.get("ok", True), "error": info.get("error"),
            "elapsed_s": info.get("elapsed_s"), "intro": intro,
            "figures": sorted((run.path / "figures").glob(f"{prefix}_*.png")),
            "results": [n for n in run.frames() if n.startswith(RESULT_OWNERS.get(prefix, ("\0",)))] if RESULT_OWNERS.get(prefix) else [],
        })  # fmt: skip
    return sections


def _baseline_rows(
    current: list[dict[str, Any]], baseline: Run
) -> tuple[list[dict[str, Any]], list[str]]:
    base = {s["prefix"]: s["recorded"] for s in _notebook_sections(baseline)}
    rows, classes = [], []
    for section in current:
        for key, value in section["recorded"].items():
            old = base.get(section["prefix"], {}).get(key)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not isinstance(old, (int, float))
                or not old
            ):
                continue
            ratio = value / old
            better_high = any(h in key for h in HIGHER_IS_BETTER)
            worse = (
                ratio < 0.9
                if better_high
                else (ratio > 1.1 and ("_ms" in key or "_s" in key or "pct" in key))
            )
            improved = (
                ratio > 1.1 if better_high else (ratio < 0.9 and ("_ms" in key or "_s" in key))
            )
            rows.append({"notebook": section["prefix"], "value": key, "baseline": old, "this run": value,
                         "ratio": round(ratio, 3), "flag": "regression" if worse else ("better" if improved else "")})  # fmt: skip
            classes.append("regression" if worse else ("improvement" if improved else ""))
    return rows, classes


def build_report(run: Run, *, baseline: Run | None = None) -> Path:
    """Write ``report.html`` into the run folder and return its path."""
    manifest = run.manifest()
    sections = _notebook_sections(run)
    ok = sum(1 for s in sections if s["ok"])
    parts: list[str] = []
    nav = ['<a href="#summary">Summary</a>', '<a href="#manifest">Manifest</a>']
    nav += [f'<a href="#{s["id"]}">{html.escape(s["title"])}</a>' for s in sections]

    cards = [
        ("notebooks", f"{ok} / {len(sections)} ok"),
        ("scale · seed", f"{manifest.get('scale', '–')} · {manifest.get('seed', '–')}"),
        ("run time", f"{manifest.get('run_all_elapsed_s', '–')} s"),
        ("server", str(manifest.get("server_version", "–")).split(" ")[0]),
        ("timescaledb", str(manifest.get("timescaledb_edition") or "none")),
    ]
    highlight = {
        "wallet_history_speedup": "wallet index speed-up", "knee_max_size": "pool knee (max_size)",
        "rows_packet_flow": "packets loaded", "load_rows_per_s": "load rows/s",
    }  # fmt: skip
    for s in sections:
        for key, label in highlight.items():
            if key in s["recorded"] and s["recorded"][key] is not None:
                value = s["recorded"][key]
                cards.append((label, f"{value:,.1f}" if isinstance(value, float) else _fmt(value)))
    parts.append('<div class="cards" id="summary">' + "".join(
        f'<div class="card"><div class="label">{html.escape(k)}</div><div class="value">{html.escape(v)}</div></div>'
        for k, v in cards) + "</div>")  # fmt: skip

    server_rows = [
        {"item": "run", "value": run.id}, {"item": "target", "value": manifest.get("target")},
        {"item": "PostgreSQL", "value": manifest.get("server_version")},
        {"item": "TimescaleDB", "value": manifest.get("timescaledb")},
        {"item": "extensions", "value": manifest.get("extensions")},
        {"item": "schema version", "value": manifest.get("schema_version")},
        {"item": "machine", "value": manifest.get("machine")},
        {"item": "ibcbench", "value": f"{manifest.get('ibcbench_version', __version__)} ({manifest.get('git_commit') or 'no git'})"},
        {"item": "parameters", "value": manifest.get("parameters")},
    ]  # fmt: skip
    settings = manifest.get("settings") or {}
    parts.append(
        '<section id="manifest"><h2>Manifest</h2>'
        + _table(server_rows)
        + f"<details><summary>{len(settings)} non-default server settings</summary>"
        + _table([{"setting": k, "value": v} for k, v in settings.items()], limit=500)
        + "</details></section>"
    )

    if baseline is not None:
        rows, classes = _baseline_rows(sections, baseline)
        body = (
            _table(rows, limit=500, classes=classes)
            if rows
            else '<p class="muted">no shared numbers</p>'
        )
        try:
            from ibcbench.results.compare import compare_runs

            cmp_ = compare_runs(baseline, run)
            lat_classes = [
                "regression" if v == "slower" else "improvement" if v == "faster" else ""
                for v in cmp_.frame.verdict
            ]
            body += "<h3>Workload latency (median ratio, 95% bootstrap CI)</h3>" + _table(
                cmp_.frame, classes=lat_classes
            )
        except Exception:  # no workload latencies in one of the runs
            pass
        n_reg = sum(1 for c in classes if c == "regression")
        parts.append(f'<section id="baseline"><h2>Against baseline {html.escape(baseline.id)}'
                     f'<span class="status {"failed" if n_reg else "ok"}">{n_reg} regression(s)</span></h2>{body}</section>')  # fmt: skip
        nav.insert(2, '<a href="#baseline">Baseline</a>')

    for s in sections:
        status = (
            '<span class="status ok">ok</span>'
            if s["ok"]
            else '<span class="status failed">failed</span>'
        )
        elapsed = (
            f'<span class="muted"> · {s["elapsed_s"]} s</span>'
            if s["elapsed_s"] is not None
            else ""
        )
        block = [f'<section id="{s["id"]}"><h2>{html.escape(s["title"])}{status}{elapsed}</h2>']
        if s["intro"]:
            block.append(f'<p class="muted">{html.escape(s["intro"])}</p>')
        if s["error"]:
            block.append(f'<p class="error">{html.escape(s["error"])}</p>')
        if s["recorded"]:
            block.append(
                "<h3>Key numbers</h3>"
                + _table([{"name": k, "value": v} for k, v in s["recorded"].items()])
            )
        for fig in s["figures"]:
            block.append(_image(fig))
        for name in s["results"]:
            block.append(
                f"<details><summary>result table {html.escape(name)}</summary>{_table(run.read_frame(name))}</details>"
            )
        block.append(
            f'<p><a href="{html.escape(s["path"].name)}">executed notebook {html.escape(s["path"].name)}</a></p></section>'
        )
        parts.append("".join(block))

    plans_html = run.path / DIFF_HTML
    if plans_html.exists():
        parts.append(
            f'<section id="plans"><h2>EXPLAIN diffs</h2>{plans_html.read_text()}</section>'
        )
        nav.append('<a href="#plans">EXPLAIN diffs</a>')

    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ibcbench · {html.escape(run.id)}</title>'
        f"<style>{CSS}</style></head><body><header><h1>ibcbench report</h1>"
        f'<div class="sub">run {html.escape(run.id)} · generated {generated} · ibcbench {__version__}</div></header>'
        f"<main><nav>{''.join(nav)}</nav>{''.join(parts)}</main></body></html>"
    )
    out = run.path / "report.html"
    out.write_text(page)
    return out
