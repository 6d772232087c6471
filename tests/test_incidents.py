"""Planted incidents stored at load, the health score that sees them, and the monitors scored."""

from __future__ import annotations

import psycopg
import pytest

from data_gen import GenerationParams, generate
from ibcbench.bench.incidents import incident_timeline, score_monitors
from ibcbench.data.load import load_dataset
from ibcbench.errors import LoadError
from ibcbench.infra.migrate import migrate_down, migrate_up
from ibcbench.toolkit import monitoring
from tests.test_metrics_home import assert_metrics_declared

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def tiny_manifest() -> dict:
    gen = generate(GenerationParams(seed=42, scale="tiny"))
    for _ in gen:
        pass
    return gen.manifest()


@pytest.fixture(scope="module")
def scored(loaded_dsn: str):  # type: ignore[no-untyped-def]
    return score_monitors(loaded_dsn)


def test_the_manifests_incidents_are_stored_at_load(loaded_dsn: str, tiny_manifest: dict) -> None:
    stored = incident_timeline(loaded_dsn)
    planted = tiny_manifest["incidents"]
    assert len(stored) == len(planted) == 4
    for row, inc in zip(stored.itertuples(), planted, strict=True):
        assert (row.kind, row.chain_id) == (inc["kind"], inc["chain_id"])
        assert row.started_at.isoformat() == inc["start"]
        assert row.ended_at.isoformat() == inc["end"]
        assert (row.channel_id or None) == inc["channel_id"]


def test_incident_free_data_stores_none(make_database) -> None:
    dsn = make_database("no_incidents")
    migrate_up(dsn)
    load_dataset(
        dsn, GenerationParams(seed=1, scale="tiny", packets=2_000, incidents=False), quiet=True
    )
    assert incident_timeline(dsn).empty


def test_incidents_need_their_table_before_any_row_is_loaded(make_database) -> None:
    dsn = make_database("old_schema")
    migrate_up(dsn, 9)
    # 000012 brings ibcbench_incidents; the load journal of 000013, checked first, is missing too
    with pytest.raises(
        LoadError,
        match="table ibcbench_(incidents|load_attempts) does not exist.* run `ibcbench schema up`",
    ):
        load_dataset(dsn, GenerationParams(seed=1, scale="tiny", packets=2_000), quiet=True)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM packet_flow").fetchone()[0] == 0  # type: ignore[index]


def test_the_health_score_puts_the_halted_chain_last(scored, tiny_manifest: dict) -> None:
    health = scored.health
    halted = next(i["chain_id"] for i in tiny_manifest["incidents"] if i["kind"] == "chain_halt")
    assert health.chain_id.iloc[-1] == halted  # ordered best first
    assert int(health.trouble_hours[health.chain_id == halted].iloc[0]) >= 1
    assert scored.key_numbers()["health_worst_chain"] == halted


def test_every_monitor_is_scored_and_the_planted_query_is_found(scored) -> None:
    s = scored.scores.set_index("monitor")
    assert list(s.index) == ["health_score", "stuck_packets", "long_running_queries"]
    assert ((s.hits + s.misses) == s.targets).all()
    assert scored.score("long_running_queries") == {
        "targets": 1,
        "hits": 1,
        "misses": 0,
        "false_alarms": 0,
    }
    assert scored.score("health_score")["hits"] >= 1
    numbers = scored.key_numbers()
    assert_metrics_declared(scored)
    assert numbers["incidents_planted"] == 4
    assert numbers["monitor_health_score_hits"] == scored.score("health_score")["hits"]
    fig = scored.plot()
    assert len(fig.axes[0].patches) >= 4  # one bar per incident


def test_stuck_packets_monitor_finds_the_outage_channel(
    loaded_dsn: str, tiny_manifest: dict
) -> None:
    outage = next(i for i in tiny_manifest["incidents"] if i["kind"] == "relayer_outage")
    with psycopg.connect(loaded_dsn) as conn:
        found = monitoring.stuck_packets(conn, min_stuck=1, min_share_pct=0)
    ends = set(zip(found.chain_a, found.channel_a, strict=True)) | set(
        zip(found.chain_b, found.channel_b, strict=True)
    )
    assert (outage["chain_id"], outage["channel_id"]) in ends
    assert (found.stuck_pct.astype(float) <= 100).all()


def test_down_restores_the_previous_health_score(make_database) -> None:
    dsn = make_database("health_down")
    migrate_up(dsn, 12)
    migrate_down(dsn, 1)  # 000012, the incidents and their health score
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('ibcbench_incidents')").fetchone()[0] is None  # type: ignore[index]
        cur = conn.execute("SELECT * FROM calculate_network_health_score(NULL)")
        assert [d.name for d in cur.description or []][-1] == "grade"
    migrate_up(dsn)
    with psycopg.connect(dsn) as conn:
        cur = conn.execute("SELECT * FROM calculate_network_health_score(NULL)")
        assert [d.name for d in cur.description or []][-1] == "trouble_hours"


def test_the_health_bars_and_the_key_numbers_use_one_window(loaded_dsn: str, scored) -> None:  # type: ignore[no-untyped-def]
    from ibcbench.bench.maintenance import monitoring_tables, plot_health

    bars = monitoring_tables(loaded_dsn)["network_health"]
    numbers = scored.key_numbers()
    assert bars.attrs["window_days"] == numbers["health_window_days"] == scored.window_days
    worst = bars.loc[bars.health_score.astype(float).idxmin()]
    assert (worst.chain_id, float(worst.health_score)) == (
        numbers["health_worst_chain"],
        numbers["health_worst"],
    )
    title = plot_health(bars).axes[0].get_title()
    assert title == f"Network health per chain (whole data span, {scored.window_days} days)"
    assert f"whole data span, {scored.window_days} days" in scored.plot().axes[0].get_title()
