"""bench/replicas and bench/pgbouncer against the real standby and PgBouncer; notebook 07 at tiny scale."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from ibcbench.bench.prepared import prepared_statements_through_pgbouncer
from ibcbench.bench.replicas import compare_analytics, start_replicas
from ibcbench.infra.scaleout import ScaleOut
from ibcbench.metrics import all_metrics
from ibcbench.results.recorded import record_results
from ibcbench.results.runs import new_run
from ibcbench.suite.notebook import notebooks_dir, run_notebook

pytestmark = [pytest.mark.db]


def _primary_postgres_dsn(topology: ScaleOut) -> str:
    state = topology.server.read_state()
    assert state is not None
    return state.conninfo("postgres", tcp=True)


def test_a_server_that_is_not_embedded_without_a_standby_skips_the_measurements(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REPLICA_URL", raising=False)
    setup = start_replicas("postgresql://ibcbench@127.0.0.1:1/ibcbench")
    assert setup.skipped is not None
    assert setup.skipped.text.startswith("not available: the primary is not the kit's embedded")
    assert "give its standby with replica_dsn" in capsys.readouterr().err
    assert compare_analytics(setup) is setup.skipped  # nothing is measured, nothing connects
    assert record_results(setup.skipped, setup.skipped) == {"replicas": setup.skipped.text}


def test_prepared_statements_break_through_transaction_pooling_and_the_fix_holds(
    topology: ScaleOut,
) -> None:
    from ibcbench.data.datasets import ensure_dataset

    dsn = ensure_dataset(_primary_postgres_dsn(topology), scale="tiny", seed=42)
    url = topology.pgbouncer_url()
    assert url is not None and topology.read_state().pgbouncer.pool_mode == "transaction"  # type: ignore[union-attr]
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    params["dbname"] = conninfo_to_dict(dsn)["dbname"]
    frame = prepared_statements_through_pgbouncer(make_conninfo(**params), clients=8, executions=40)
    by = frame.set_index("prepare_threshold")
    assert by.loc["5", "errors"] > 0
    assert any('prepared statement "_pg3_' in m for m in by.loc["5", "messages"])
    assert by.loc["None", "errors"] == 0


@pytest.mark.notebook
def test_07_replicas(topology: ScaleOut, tmp_path: Path) -> None:
    run = new_run("nb07", root=tmp_path)
    result = run_notebook(
        notebooks_dir() / "07_replicas.ipynb",
        run,
        {"dsn": _primary_postgres_dsn(topology), "scale": "tiny"},
    )
    assert result.ok, result.error
    rec = result.recorded
    assert (
        sorted(set(rec) - set(all_metrics())) == []
    )  # every key the notebook records has a metric
    assert rec["lag_samples"] >= 5 and rec["lag_sample_interval_ms"] <= 110
    assert rec["lag_peak_bytes"] > 0 and rec["lag_catch_up_s"] >= 0
    assert rec["analytics_errors"] == 0 and rec["analytics_standby_p50_ms"] > 0
    assert rec["cancelled_feedback_off"] >= 1  # vacuum on the primary cancels standby queries
    assert rec["cancelled_feedback_on"] <= rec["cancelled_feedback_off"]
    assert rec["dead_tuples_kept_feedback_on"] > rec["dead_tuples_kept_feedback_off"]
    assert rec["restart_primary_errors"] == 0  # the runner keeps going on the primary
    assert rec["restart_reads_on_standby"] > 0 and rec["restart_s"] > 0
    assert (run.path / "figures" / "07_replication_lag.png").exists()
    # what the notebook started is gone; the session's standby and PgBouncer are still there
    assert [r.index for r in topology.read_state().replicas] == [1] and topology.pgbouncer_running()


@pytest.mark.db
def test_recovery_conflicts_refuse_a_users_schema_of_the_scratch_name(make_database) -> None:
    """The old code took ``ibcbench_replicas`` with CREATE SCHEMA IF NOT EXISTS and dropped it
    (CASCADE) at the end, a user's schema of that name with it."""
    import psycopg

    from ibcbench.bench.replicas import SCHEMA, ReplicaSetup, measure_recovery_conflicts
    from ibcbench.errors import ConfigError

    dsn = make_database("replscratch")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(f"CREATE TABLE {SCHEMA}.mine AS SELECT 'keep me' AS note")
    with pytest.raises(ConfigError, match=f"schema '{SCHEMA}' .* was not created by ibcbench"):
        measure_recovery_conflicts(ReplicaSetup(dsn, dsn, None))
    with psycopg.connect(dsn) as conn:
        assert conn.execute(f"SELECT note FROM {SCHEMA}.mine").fetchall() == [("keep me",)]
