"""The columnstore benchmark: pure rules without a database, and a real run on the tiny dataset."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest

from ibcbench.bench import columnstore as cs
from ibcbench.bench.columnstore.copies import chunk_interval, drop_schema
from ibcbench.bench.columnstore.result import empty_result, recommend
from ibcbench.errors import BenchmarkError
from tests.test_metrics_home import assert_metrics_declared


def _queries(rows: list[tuple[str, str, str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["setting", "query", "kind", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms"]
    )


FRAME = _queries(
    [
        ("rowstore", "hourly", "analytics", 10.0, 9.0, 11.0),
        ("rowstore", "lookup", "point", 1.0, 0.9, 1.1),
        ("a", "hourly", "analytics", 2.0, 1.8, 2.2),  # 5x faster, interval (4.1, 6.1)
        ("a", "lookup", "point", 1.05, 0.8, 1.3),  # within noise: (0.69, 1.375) holds 1
        ("b", "hourly", "analytics", 20.0, 18.0, 22.0),  # 2x slower
        ("b", "lookup", "point", 0.5, 0.45, 0.55),
    ]
)


def _result(queries: pd.DataFrame) -> cs.ColumnstoreResult:
    empty = empty_result("x")
    settings = pd.DataFrame(
        {
            "setting": ["a", "b"],
            "segmentby": ["source_chain", "sender"],
            "orderby": ["created_at DESC"] * 2,
            "compression_ratio": [3.0, 0.8],
        }
    )
    return cs.ColumnstoreResult(
        "measured", settings, empty.chunks, queries, empty.ingest, empty.dml, {}, ""
    )


def test_speedups_carry_an_interval_and_a_verdict_that_says_no_difference_when_it_holds_1() -> None:
    s = _result(FRAME).speedups().set_index(["setting", "query"])
    assert s.loc[("a", "hourly")].tolist()[1:] == [
        5.0,
        9.0 / 2.2 and round(9.0 / 2.2, 3),
        round(11.0 / 1.8, 3),
        "faster",
    ]
    assert s.loc[("a", "lookup")].verdict == "no difference"
    assert s.loc[("b", "hourly")].verdict == "slower"
    assert s.loc[("b", "lookup")].verdict == "faster"


def test_the_recommendation_follows_the_analytics_queries_and_names_the_cost() -> None:
    result = _result(FRAME)
    assert result.recommended_setting == "a"
    text = recommend(result.settings, FRAME)
    assert "segmentby 'source_chain'" in text and "x5.00 faster" in text
    assert "point lookups take x1.05 the rowstore's time" in text
    assert "Avoid segmentby 'sender'" in text  # its chunks grew (ratio 0.8)


@pytest.mark.parametrize(
    ("span_hours", "interval"),
    [(24, "2 hours"), (72, "6 hours"), (336, "24 hours"), (3, "1 hours")],
)
def test_about_twelve_chunks_over_the_span(span_hours: int, interval: str) -> None:
    lo = pd.Timestamp("2026-01-01", tz="UTC")
    assert chunk_interval(lo, lo + pd.Timedelta(hours=span_hours)) == interval


def test_an_unknown_setting_is_refused_before_any_work() -> None:
    with pytest.raises(BenchmarkError, match="unknown columnstore setting 'by_color': choose from"):
        cs.benchmark_columnstore("postgresql://nobody@127.0.0.1:1/none", settings=("by_color",))


@pytest.mark.db
def test_the_columnstore_run_on_the_tiny_dataset_of_each_edition(
    edition_server, edition_loaded_dsn: str
) -> None:
    loaded_dsn = edition_loaded_dsn
    with psycopg.connect(loaded_dsn) as conn:
        running = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()[0]
    assert running == edition_server.license
    result = cs.benchmark_columnstore(
        loaded_dsn,
        settings=("by_source_chain", "by_sender"),
        repetitions=5,
        ingest_rows=300,
        rounds=1,
        policy_wait_s=60,
        keep=True,
    )
    try:
        assert_metrics_declared(result)  # on the Apache edition: "columnstore" only
        if edition_server.edition == "apache":
            assert not result.measured and "Community edition" in result.available
            assert result.queries.empty and list(result.key_numbers()) == ["columnstore"]
            return
        # Community edition: every chunk but the newest converted, sizes as the server reports them
        s = result.settings.set_index("setting")
        chunks = result.chunks[result.chunks.setting == "by_source_chain"]
        compressed = chunks[chunks.status == "Compressed"]
        assert len(compressed) == s.chunks_converted["by_source_chain"] == len(chunks) - 1
        assert s.compression_ratio["by_source_chain"] == round(
            compressed.before_bytes.sum() / compressed.after_bytes.sum(), 2
        )
        assert s.compression_ratio["by_source_chain"] > 1.5  # per-chain segments compress well
        q = result.queries.set_index(["setting", "query"])
        assert (q.loc["rowstore"].columnar_scans == 0).all()
        assert (q.loc["by_source_chain"].columnar_scans > 0).all()
        # the copies answer every query the same, compressed or not
        assert [",".join(i) for i in q[~q.same_answer_as_rowstore].index] == []
        assert result.policy["total_runs"] >= 1, result.policy
        assert result.policy["last_run_status"] in ("Success", "Failed"), result.policy
        assert set(result.ingest.scenario) == {
            "rowstore: new hour",
            "columnstore: new hour",
            "columnstore: backfill into a compressed chunk",
        }
        numbers = result.key_numbers()
        assert numbers["columnstore_setting"] == result.recommended_setting
        assert set(numbers["point_lookup_slowdown"]) == {
            "wallet_history",
            "packet_by_channel_sequence",
        }
    finally:
        drop_schema(loaded_dsn)
