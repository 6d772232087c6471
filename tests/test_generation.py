"""The generator benchmark: the real command in a child process, its memory from the kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_gen import GenerationParams, generate
from ibcbench.bench.generation import benchmark_generation
from ibcbench.cli import main
from ibcbench.errors import BenchmarkError
from tests.test_metrics_home import assert_metrics_declared


def test_the_tiny_generate_command_is_measured_and_its_folder_removed(tmp_path: Path) -> None:
    result = benchmark_generation("tiny", seed=7, rounds=2, workdir=tmp_path)
    frame = result.frame
    gen = generate(GenerationParams(seed=7, scale="tiny"))
    for _ in gen:  # the generator's own count of the rows, computed in this process
        pass
    expected = sum(gen.manifest()["rows"].values())
    assert frame["round"].tolist() == [1, 2]
    assert (frame.rows == expected).all()  # the rows the command wrote, from its manifest
    assert (frame.peak_rss_kb > 50_000).all()  # a Python process with numpy and pandas loaded
    assert frame.rows_per_s.tolist() == pytest.approx(
        (frame.rows / frame.seconds).tolist(), rel=0.01
    )
    assert result.key_numbers()["generate_peak_rss_mb"] == round(frame.peak_rss_kb.max() / 1024, 1)
    assert_metrics_declared(result)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_an_unknown_scale_is_refused_before_any_process_starts(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="unknown scale 'huge': choose from tiny, small"):
        benchmark_generation("huge", workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_bench_command_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "generate", "--scale", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "peak_rss_kb" in out and "generate --scale tiny --seed 42: median" in out
