"""The generator's own cost, measured on the command people run: wall time, rows/s and peak memory.

``ibcbench generate --scale S --out DIR`` runs in a child process per round (a fresh interpreter, so
nothing earlier in this process counts), into a temporary folder that is removed afterwards; its
maximum resident set size comes from the kernel's accounting of that child (``wait4``'s
``ru_maxrss``), and its rows from the manifest it wrote. No database is involved: generation never
includes loading.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from data_gen import PRESETS
from ibcbench.errors import BenchmarkError
from ibcbench.results.metrics.metric import TIMING, Metric, informational
from ibcbench.results.recorded import save_frame
from ibcbench.results.runs import Run


@dataclass(frozen=True)
class GenerationResult:
    """One row per round: seconds, rows, rows/s, peak RSS (KB), bytes written."""

    frame: pd.DataFrame
    scale: str
    seed: int
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_rss_mb(self) -> float:
        return round(float(self.frame.peak_rss_kb.max()) / 1024, 1)

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational("generate_scale", "", "the preset generated"),
        Metric(
            "generate_seconds_median",
            "lower",
            "s",
            TIMING,
            0.5,
            note="wall time of `ibcbench generate`",
        ),
        Metric(
            "generate_rows_per_s_median",
            "higher",
            "rows/s",
            TIMING,
            note="rows generated and written per second",
        ),
        Metric(
            "generate_peak_rss_mb",
            "lower",
            "MB",
            0.25,
            20.0,
            note="peak resident memory of the generate process",
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        f = self.frame
        return {
            "generate_scale": self.scale,
            "generate_seconds_median": round(float(f.seconds.median()), 2),
            "generate_rows_per_s_median": round(float(f.rows_per_s.median())),
            "generate_peak_rss_mb": self.peak_rss_mb,
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write the rounds as ``generate_rounds`` (no-op without a run folder)."""
        save_frame(self.frame, "generate_rounds", run_dir)

    def summary(self) -> str:
        n = self.key_numbers()
        return (
            f"generate --scale {self.scale} --seed {self.seed}: median {n['generate_seconds_median']} s "
            f"over {len(self.frame)} round(s), {n['generate_rows_per_s_median']:,} rows/s, "
            f"peak RSS {n['generate_peak_rss_mb']} MB (the largest round)"
        )


def _round(scale: str, seed: int, folder: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "ibcbench.cli", "generate", "--scale", scale, "--seed", str(seed),
           "--out", str(folder), "--quiet"]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        raise BenchmarkError(
            f"ibcbench generate failed (exit {proc.returncode}): {err.splitlines()[-1] if err else ''}"
        )
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = int(sum(manifest["rows"].values()))
    written = sum(p.stat().st_size for p in folder.iterdir())
    return {"seconds": round(seconds, 2), "rows": rows, "rows_per_s": round(rows / seconds),
            "peak_rss_kb": int(usage.ru_maxrss), "bytes_written": written}  # fmt: skip


def benchmark_generation(
    scale: str = "default", *, seed: int = 42, rounds: int = 1, workdir: Path | None = None
) -> GenerationResult:
    """Run ``ibcbench generate`` ``rounds`` times (each into a new temporary folder, removed after)."""
    if scale not in PRESETS:
        raise BenchmarkError(f"unknown scale {scale!r}: choose from {', '.join(PRESETS)}")
    if rounds < 1:
        raise BenchmarkError("rounds must be at least 1")
    rows = []
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="ibcbench-generate-", dir=workdir) as tmp:
            rows.append({"round": r + 1, **_round(scale, seed, Path(tmp) / "out")})
    return GenerationResult(
        pd.DataFrame(rows), scale, seed, {"rounds": rounds, "python": sys.version.split()[0]}
    )
