"""Index strategies on a private loaded copy: exact index sets, idempotence, restore, measurement."""

from __future__ import annotations

import psycopg
import pytest

from data_gen import GenerationParams
from ibcbench.bench.indexes import (
    STRATEGIES,
    apply_strategy,
    benchmark_index_strategies,
    present_kit_indexes,
)
from ibcbench.bench.timing import PLAN_CACHE_WARMUP
from ibcbench.data.load import load_dataset
from ibcbench.errors import BenchmarkError
from ibcbench.infra.migrate import migrate_up

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def copy_dsn(server_dsn: str) -> str:
    from tests.conftest import create_database, drop_database

    dsn = create_database(server_dsn, "t_indexes_copy")
    migrate_up(dsn)
    load_dataset(dsn, GenerationParams(seed=42, scale="tiny"), quiet=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE INDEX user_owned_idx ON packet_flow (receiver)"
        )  # not the kit's: must survive
    yield dsn
    drop_database(server_dsn, "t_indexes_copy")


def _indexes(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return present_kit_indexes(conn)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_each_strategy_leaves_exactly_its_indexes(copy_dsn: str, name: str) -> None:
    result = apply_strategy(copy_dsn, name)
    assert _indexes(copy_dsn) == {d.name for d in STRATEGIES[name].indexes}
    again = apply_strategy(copy_dsn, name)
    assert again.created == [] and again.dropped == []
    assert set(result.sizes) == {d.name for d in STRATEGIES[name].indexes}
    with psycopg.connect(copy_dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'user_owned_idx'"
        ).fetchone() == (1,)
        invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()
        assert invalid == (0,)
    apply_strategy(copy_dsn, "service")


def test_service_strategy_is_the_schema(copy_dsn: str, schema_dsn: str) -> None:
    apply_strategy(copy_dsn, "none")
    apply_strategy(copy_dsn, "service")
    assert _indexes(copy_dsn) == _indexes(schema_dsn)


def test_the_service_indexes_serve_the_wallet_query(copy_dsn: str) -> None:
    # the speed-up and the ingest rates are the benchmark's figures (notebook 02 prints them); a
    # test asserts what makes them: the plans, the buffers, the planner's costs, the rows ingested
    result = benchmark_index_strategies(
        copy_dsn, strategies=("none", "service"), repetitions=30, ingest_rows=1000
    )
    assert result.p50("service", "wallet_history") > 0 and result.p50("none", "wallet_history") > 0
    # every loop warmed up to the settled plan, then stopped at ±5% precision or at repetitions=30
    lat = result.latency
    assert (lat.warmup_runs == PLAN_CACHE_WARMUP).all() and lat.n.between(10, 30).all()
    assert ((lat.stopped_by == "precision") | (lat.n == 30)).all()
    assert (lat.p50_ci_low_ms <= lat.p50_ms).all() and (lat.p50_ms <= lat.p50_ci_high_ms).all()
    plans = result.plans.set_index(["strategy", "query"])
    # the planner may pick either wallet index: both lead with wallet_address
    assert (
        "idx_clearing_operations_wallet_"
        in plans.loc[("service", "wallet_history"), "indexes_used"]
    )
    assert (
        plans.loc[("none", "wallet_history"), "shared_hit"]
        > plans.loc[("service", "wallet_history"), "shared_hit"]
    )
    hypo = result.hypo.set_index("query")
    assert hypo.loc["wallet_history", "predicted_ratio"] < 1  # the planner's costs
    assert hypo.loc["wallet_history", "measured_ratio"] > 0
    ingest = result.ingest.set_index("strategy")
    assert (ingest.rows == 1000).all() and (ingest.rows_per_s > 0).all()
    assert set(ingest.index) == {"none", "service"}
    assert _indexes(copy_dsn) == {d.name for d in STRATEGIES["service"].indexes}


def test_unknown_strategy(copy_dsn: str) -> None:
    with pytest.raises(BenchmarkError, match="index strategy 'fast' is unknown"):
        apply_strategy(copy_dsn, "fast")


def test_a_same_named_index_on_another_table_is_not_the_kits(make_database) -> None:
    dsn = make_database("idxowner")
    migrate_up(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_packet_flow_sender_created")
        conn.execute("CREATE TABLE mine (sender text)")
        conn.execute("CREATE INDEX idx_packet_flow_sender_created ON mine (sender)")
    result = apply_strategy(dsn, "none")
    assert "idx_packet_flow_sender_created" not in result.dropped
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "SELECT tablename FROM pg_indexes WHERE indexname = 'idx_packet_flow_sender_created'"
        ).fetchall() == [("mine",)]


@pytest.mark.parametrize(
    ("notebook", "parameters"),
    [
        ("02_index_strategies.ipynb", {"strategies": ["none", "seed"]}),
        (
            "04_query_plans.ipynb",
            {"config_b": {"name": "b", "index_strategy": "seed", "settings": {}}},
        ),
    ],
)
def test_the_old_strategy_name_seed_is_refused_before_any_work_naming_service(
    notebook: str, parameters: dict
) -> None:
    from ibcbench.errors import ConfigError
    from ibcbench.suite.parameters import validate_parameters

    with pytest.raises(ConfigError, match=r"not an index strategy: use one of none, service,"):
        validate_parameters(notebook, parameters)
