"""The fault suite's result (its summary line, table, key numbers, verdict) from hand-made
outcomes, and the checks ``run_fault_suite`` makes before it starts a cluster."""

from __future__ import annotations

import pytest

from ibcbench.errors import ConfigError
from ibcbench.faults import run as suite_run
from ibcbench.faults.registry import FaultOutcome
from ibcbench.faults.run import FaultSuiteResult, run_fault_suite, suite_scale
from tests.test_metrics_home import assert_metrics_declared


def _outcome(name: str, survived: bool = True, **kw: object) -> FaultOutcome:
    return FaultOutcome("g", name, "expected", "happened", survived, **kw)  # type: ignore[arg-type]


def _mixed() -> FaultSuiteResult:
    return FaultSuiteResult(
        "tiny",
        [
            _outcome("a", recovery_s=1.5),
            _outcome("b", False, rows_lost=3, recovery_s=4.0),
            _outcome("c", bad_input=True),
            _outcome("d", False, bad_input=True),
        ],
        1.0,
    )


def test_the_summary_line_counts_faults_and_bad_inputs_apart() -> None:
    result = _mixed()
    assert result.summary_line() == (
        "faults: 2 injected, 1 survived, 3 rows lost, 1 bad inputs rejected (of 2)"
    )
    assert not result.ok
    assert result.longest_recovery().fault == "b"  # type: ignore[union-attr]
    assert result.key_numbers() == {
        "faults_injected": 2,
        "faults_survived": 1,
        "faults_rows_lost": 3,
        "faults_bad_inputs_rejected": 1,
        "faults_longest_recovery_s": 4.0,
    }
    assert list(result.frame.verdict) == ["survived", "FAILED", "survived", "FAILED"]
    assert_metrics_declared(result)


@pytest.mark.parametrize(
    ("outcomes", "line", "ok"),
    [
        ([], "faults: 0 injected, 0 survived, 0 rows lost, 0 bad inputs rejected", True),
        (
            [_outcome("a"), _outcome("b", bad_input=True)],
            "faults: 1 injected, 1 survived, 0 rows lost, 1 bad inputs rejected",
            True,
        ),
        # a fault that could not be injected is neither survived nor failed, and counted apart
        (
            [_outcome("a"), _outcome("n", False, ran=False), _outcome("m", False, ran=False)],
            "faults: 1 injected, 1 survived, 0 rows lost, 0 bad inputs rejected, 2 not run",
            True,
        ),
        # a bad input that could not run is not among the bad inputs
        (
            [_outcome("c", bad_input=True), _outcome("n", False, bad_input=True, ran=False)],
            "faults: 0 injected, 0 survived, 0 rows lost, 1 bad inputs rejected, 1 not run",
            True,
        ),
        (
            [_outcome("a", False, rows_lost=7), _outcome("b", rows_lost=5)],
            "faults: 2 injected, 1 survived, 12 rows lost, 0 bad inputs rejected",
            False,
        ),
        (
            [_outcome("c", False, bad_input=True), _outcome("n", False, ran=False)],
            "faults: 0 injected, 0 survived, 0 rows lost, 0 bad inputs rejected (of 1), 1 not run",
            False,
        ),
    ],
)
def test_summary_line_and_ok(outcomes: list[FaultOutcome], line: str, ok: bool) -> None:
    result = FaultSuiteResult("tiny", outcomes, 0.5)
    assert result.summary_line() == line
    assert result.ok is ok


def test_not_run_faults_show_their_verdict_and_count_in_no_key_number() -> None:
    result = FaultSuiteResult(
        "tiny", [_outcome("a", recovery_s=0.123), _outcome("n", False, ran=False)], 0.5
    )
    assert [o.verdict for o in result.outcomes] == ["survived", "not run"]
    assert [o.fault for o in result.not_run] == ["n"]
    assert result.key_numbers() == {
        "faults_injected": 1,
        "faults_survived": 1,
        "faults_rows_lost": 0,
        "faults_bad_inputs_rejected": 0,
        "faults_longest_recovery_s": 0.12,
    }


def test_key_numbers_without_a_timed_recovery() -> None:
    result = FaultSuiteResult("tiny", [_outcome("a")], 0.5)
    assert result.longest_recovery() is None
    assert result.key_numbers()["faults_longest_recovery_s"] is None


def test_the_table_shortens_long_texts_and_groups_row_counts() -> None:
    result = FaultSuiteResult(
        "tiny",
        [
            FaultOutcome(
                "disk",
                "load_disk_full",
                "the load fails in one line",
                "exit 1, one line naming the tablespace; 0 rows",
                True,
                rows_before=0,
                rows_after=1234567,
            ),
            FaultOutcome(
                "disk", "runs_disk_full", "one line", "not run: needs root", False, ran=False
            ),
        ],
        0.5,
    )
    # at width 20 a longer text keeps 19 characters and an ellipsis; no row count is blank
    assert result.table(width=20).splitlines() == [
        "group          fault             expected             happened rows_before rows_after  verdict",
        " disk load_disk_full the load fails in o… exit 1, one line na…           0  1,234,567 survived",
        " disk runs_disk_full             one line  not run: needs root                         not run",
    ]


def test_the_frame_has_every_outcome_field_and_the_verdict() -> None:
    frame = _mixed().frame
    assert list(frame.columns) == [
        "group",
        "fault",
        "expected",
        "happened",
        "survived",
        "rows_before",
        "rows_after",
        "rows_lost",
        "recovery_s",
        "bad_input",
        "ran",
        "verdict",
    ]
    assert len(frame) == 4


class _NoLab:
    """Stands in for FaultLab: the suite must refuse bad arguments before it makes one."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a lab was started")


def test_unknown_scales_and_names_are_refused_before_any_cluster_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(suite_run, "FaultLab", _NoLab)
    with pytest.raises(
        ConfigError, match=r"^scale 'huge' is unknown: use one of tiny, small, default$"
    ):
        run_fault_suite("huge", progress=None)
    with pytest.raises(ConfigError, match=r"^no fault or group named nope, zz: choose from "):
        run_fault_suite("tiny", only=["disk", "zz", "nope"], progress=None)


@pytest.mark.parametrize(
    ("dataset_scale", "scale"), [("tiny", "tiny"), ("small", "small"), ("default", "small")]
)
def test_suite_scale(dataset_scale: str, scale: str) -> None:
    assert suite_scale(dataset_scale) == scale
