"""Running the fault suite (``ibcbench bench faults``): every fault on a lab of its own, one table.

The suite's last line counts both kinds of case: ``faults: N injected, S survived, R rows lost,
M bad inputs rejected``. The test suite runs the fast faults at ``tiny``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from ibcbench.db import connect
from ibcbench.errors import ConfigError, first_line
from ibcbench.faults.lab import FAULT_SCALES, FaultLab
from ibcbench.faults.registry import FaultOutcome, registered_faults
from ibcbench.results.metrics.metric import Metric


@dataclass(frozen=True)
class FaultSuiteResult:
    scale: str
    outcomes: list[FaultOutcome]
    elapsed_s: float
    server: dict[str, Any] = field(default_factory=dict)
    #: the lab's workspace (its cluster, folders and runs), removed at the end unless kept
    workdir: Path | None = None

    @property
    def frame(self) -> pd.DataFrame:
        rows = [asdict(o) | {"verdict": o.verdict} for o in self.outcomes]
        columns = [f.name for f in FaultOutcome.__dataclass_fields__.values()] + ["verdict"]
        return pd.DataFrame(rows, columns=columns)

    @property
    def injected(self) -> list[FaultOutcome]:
        return [o for o in self.outcomes if o.ran and not o.bad_input]

    @property
    def bad_inputs(self) -> list[FaultOutcome]:
        return [o for o in self.outcomes if o.ran and o.bad_input]

    @property
    def not_run(self) -> list[FaultOutcome]:
        """Faults that could not be injected on this machine (say, mounting needs root)."""
        return [o for o in self.outcomes if not o.ran]

    @property
    def rows_lost(self) -> int:
        return sum(o.rows_lost for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """Every fault that ran survived (the summary line counts those that did not run)."""
        return all(o.survived for o in self.outcomes if o.ran)

    def longest_recovery(self) -> FaultOutcome | None:
        timed = [o for o in self.outcomes if o.recovery_s is not None]
        return max(timed, key=lambda o: o.recovery_s or 0.0) if timed else None

    def summary_line(self) -> str:
        return (
            f"faults: {len(self.injected)} injected, {sum(o.survived for o in self.injected)} "
            f"survived, {self.rows_lost} rows lost, "
            f"{sum(o.survived for o in self.bad_inputs)} bad inputs rejected"
            + (
                f" (of {len(self.bad_inputs)})"
                if not all(o.survived for o in self.bad_inputs)
                else ""
            )
            + (f", {len(self.not_run)} not run" if self.not_run else "")
        )

    def table(self, width: int = 60) -> str:
        """The fault table as text: fault, expected, happened, rows before/after, verdict."""
        frame = self.frame[
            ["group", "fault", "expected", "happened", "rows_before", "rows_after", "verdict"]
        ].copy()
        for column in ("expected", "happened"):
            frame[column] = frame[column].map(
                lambda s: s if len(s) <= width else s[: width - 1] + "…"
            )
        for column in ("rows_before", "rows_after"):
            frame[column] = frame[column].map(
                lambda v: "" if v is None or pd.isna(v) else f"{int(v):,}"
            )
        return frame.to_string(index=False)

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        Metric(
            "faults_injected", "none", "faults", note="faults the suite injected (its scale's set)"
        ),
        Metric("faults_survived", "higher", "faults", note="injected faults the kit came through"),
        Metric(
            "faults_rows_lost", "lower", "rows", note="rows lost or doubled against a clean load"
        ),
        Metric(
            "faults_bad_inputs_rejected",
            "higher",
            "inputs",
            note="bad inputs refused in one line before any work",
        ),
        Metric(
            "faults_longest_recovery_s",
            "lower",
            "s",
            1.0,
            5.0,
            note="the slowest recovery (a rerun, a reconnect): a restart's time varies a lot",
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        longest = self.longest_recovery()
        return {
            "faults_injected": len(self.injected),
            "faults_survived": sum(o.survived for o in self.injected),
            "faults_rows_lost": self.rows_lost,
            "faults_bad_inputs_rejected": sum(o.survived for o in self.bad_inputs),
            "faults_longest_recovery_s": round(longest.recovery_s or 0.0, 2) if longest else None,
        }

    def save(self, run_dir: Any) -> None:
        if run_dir is None:
            return
        from ibcbench.results.recorded import save_frame

        save_frame(self.frame, "faults", run_dir)


def suite_scale(dataset_scale: str) -> str:
    """The fault suite's scale for a run at ``dataset_scale``: tiny stays tiny (the fast faults), any
    larger run gets every fault at ``small`` (loads of a small folder are long enough to interrupt
    mid-COPY; larger ones add minutes and no new fault)."""
    return "tiny" if dataset_scale == "tiny" else "small"


def run_fault_suite(
    scale: str = "small",
    *,
    seed: int = 42,
    only: Sequence[str] | None = None,
    keep: bool = False,
    progress: Callable[[str], None] | None = print,
) -> FaultSuiteResult:
    """Run every fault for ``scale`` (at ``tiny`` the fast ones) on a lab cluster of its own.

    ``only`` names faults or groups to run. A fault function that raises counts as a failed fault
    (its error in the table), and the suite goes on with the next one.
    """
    if scale not in FAULT_SCALES:
        raise ConfigError(f"scale {scale!r} is unknown: use one of {', '.join(FAULT_SCALES)}")
    faults = registered_faults()
    if only:
        names = {f.name for f in faults} | {f.group for f in faults}
        unknown = sorted(set(only) - names)
        if unknown:
            raise ConfigError(
                f"no fault or group named {', '.join(unknown)}: choose from "
                f"{', '.join(sorted(names))}"
            )
        faults = [f for f in faults if f.name in only or f.group in only]
    if scale == "tiny":
        faults = [f for f in faults if f.fast]
    started = time.perf_counter()
    outcomes: list[FaultOutcome] = []
    with FaultLab(scale, seed=seed, keep=keep) as lab:
        for f in faults:
            t0 = time.perf_counter()
            try:
                got = f.run(lab)
                got_list = [got] if isinstance(got, FaultOutcome) else list(got)
            except Exception as exc:  # a broken fault is a failed fault, with the reason shown
                detail = first_line(exc, "")
                got_list = [
                    FaultOutcome(
                        f.group,
                        f.name,
                        "the fault runs to its end",
                        f"the fault itself failed: {type(exc).__name__}: {detail}",
                        False,
                    )
                ]
            outcomes.extend(got_list)
            if progress:
                verdicts = ", ".join(o.verdict for o in got_list)
                progress(f"  {f.group}/{f.name}: {verdicts} ({time.perf_counter() - t0:.1f} s)")
        with connect(lab.admin_dsn) as conn:
            server = {
                "server_version": conn.info.server_version,
                "timescaledb": conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
                ).fetchone(),
            }
    return FaultSuiteResult(
        scale, outcomes, time.perf_counter() - started, server, workdir=lab.workdir
    )
