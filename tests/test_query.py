"""QueryBuilder and BatchInsertBuilder: exact SQL, renumbered placeholders, injection attempts, upserts."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import psycopg
import pytest

from ibcbench.errors import ConfigError
from ibcbench.toolkit.query import BatchInsertBuilder, QueryBuilder

T = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("builder", "text", "params"),
    [
        (
            QueryBuilder("packet_flow")
            .select("id")
            .where("status = $1", "stuck")
            .where("created_at > $2", T)
            .order_by("created_at", desc=True)
            .limit(100),
            'SELECT "id" FROM "packet_flow" WHERE (status = $1) AND (created_at > $2) ORDER BY "created_at" DESC LIMIT $3',
            ["stuck", T, 100],
        ),
        (
            QueryBuilder("packet_flow").where("created_at > $1", T).where("status = $1", "stuck"),
            'SELECT * FROM "packet_flow" WHERE (created_at > $1) AND (status = $2)',
            [T, "stuck"],
        ),
        (
            QueryBuilder("clearing_operations")
            .where("amount BETWEEN $2 AND $1", 10, 5)
            .where_in("status", ["a", "b"]),
            'SELECT * FROM "clearing_operations" WHERE (amount BETWEEN $1 AND $2) AND ("status" = ANY($3))',
            [5, 10, ["a", "b"]],
        ),
        (
            QueryBuilder("public.network_stats")
            .select("chain_id", "date")
            .where_eq("chain_id", "osmosis-1")
            .offset(5),
            'SELECT "chain_id", "date" FROM "public"."network_stats" WHERE ("chain_id" = $1) OFFSET $2',
            ["osmosis-1", 5],
        ),
        (
            QueryBuilder("packet_flow").where("sender LIKE %s", "osmo1%"),
            'SELECT * FROM "packet_flow" WHERE (sender LIKE $1)',
            ["osmo1%"],
        ),
    ],
)
def test_builder_produces_exact_sql(builder: QueryBuilder, text: str, params: list) -> None:
    assert builder.to_sql() == (text, params)


def test_builder_is_immutable() -> None:
    base = QueryBuilder("packet_flow")
    narrowed = base.where("status = $1", "stuck")
    assert base.conditions == () and len(narrowed.conditions) == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: QueryBuilder("packet_flow; DROP TABLE x"), "identifier .* is invalid"),
        (
            lambda: QueryBuilder("packet_flow").select('id" FROM pg_shadow --'),
            "identifier .* is invalid",
        ),
        (
            lambda: QueryBuilder("packet_flow").order_by("created_at; DELETE"),
            "identifier .* is invalid",
        ),
        (
            lambda: QueryBuilder("packet_flow").where("status = $1; DROP TABLE packet_flow", "x"),
            "contains ';' or a comment",
        ),
        (
            lambda: QueryBuilder("packet_flow").where("status = $1 -- ", "x"),
            "contains ';' or a comment",
        ),
        (
            lambda: QueryBuilder("packet_flow").where("status = $1 /* x */", "x"),
            "contains ';' or a comment",
        ),
        (
            lambda: QueryBuilder("packet_flow").where("status = $1", "x", "y"),
            "1 placeholder\\(s\\) but 2 value",
        ),
        (lambda: QueryBuilder("packet_flow").where("status = $1 AND id = %s", "x"), "mixes"),
        (lambda: QueryBuilder("packet_flow").limit(-1), "limit must be a non-negative integer"),
        (
            lambda: QueryBuilder("packet_flow").limit("10; DROP"),
            "limit must be a non-negative integer",
        ),  # type: ignore[arg-type]
        (
            lambda: BatchInsertBuilder("t", "a").on_conflict("DROP TABLE t"),
            "is a target and an action",
        ),
        (
            lambda: BatchInsertBuilder("t", "a").on_conflict("DO NOTHING; DROP TABLE t"),
            "contains ';'",
        ),
        (
            lambda: BatchInsertBuilder("t", "a").on_conflict(
                "ON CONFLICT DO NOTHING; DROP TABLE t"
            ),
            "contains ';'",
        ),
        (lambda: BatchInsertBuilder("t", "a").add_row(1, 2), "add_row got 2 values for 1 columns"),
        (lambda: BatchInsertBuilder("t", "a", "a"), "columns must be distinct"),
    ],
)
def test_hostile_identifiers_and_fragments_are_rejected(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()


INJECTIONS = [
    "'; DROP TABLE packet_flow; --",
    "' OR '1'='1",
    "stuck' --",
    "stuck'); DELETE FROM packet_flow; --",
    "\\'; SELECT pg_sleep(5); --",
    "/* comment */ stuck",
    "stuck\x00",
    "ʼ OR 1=1 --",
    "＇; DROP TABLE packet_flow; --",
    "'||(SELECT current_user)||'",
    "$$; DROP TABLE packet_flow; $$",
    "%s%s%s%s",
    "%(name)s",
    '"; DROP TABLE packet_flow; --',
    "1; UPDATE packet_flow SET status = 'x'",
    "' UNION SELECT usename FROM pg_user --",
    "acknowledged\nDELETE FROM packet_flow",
    "stuck'::text; DROP TABLE packet_flow; --",
    "😀'; DROP TABLE packet_flow; --",
    "' AND pg_sleep(10) IS NULL --",
    "E'\\x27'",
    "stuck\r\n;--",
]


@pytest.mark.db
@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_attempts_are_bound_as_values(schema_dsn: str, value: str) -> None:
    clean = value.replace("\x00", "")
    with psycopg.connect(schema_dsn) as conn:
        conn.execute(
            "INSERT INTO packet_flow (id, source_chain, destination_chain, source_channel, destination_channel, sequence,"
            " status, sender, receiver, amount, denom, timeout_timestamp, created_at) VALUES (1, 'a', 'b', 'channel-0',"
            " 'channel-1', 1, 'stuck', 's', 'r', 1, 'uatom', now(), now())"
        )
        q = (
            QueryBuilder("packet_flow")
            .select("id")
            .where("sender = $1", clean)
            .where_eq("denom", clean)
        )
        assert q.execute(conn) == []
        assert QueryBuilder("packet_flow").select("id").where("status = $1", "stuck").execute(
            conn
        ) == [(1,)]
        assert conn.execute("SELECT count(*) FROM packet_flow").fetchone() == (1,)
        conn.rollback()


@pytest.mark.db
def test_builder_executes_on_a_connection_and_explains(loaded_dsn: str) -> None:
    with psycopg.connect(loaded_dsn) as conn:
        q = (
            QueryBuilder("packet_flow")
            .select("id", "status")
            .where("status = $1", "stuck")
            .order_by("id")
            .limit(5)
        )
        rows = q.execute(conn)
        assert rows and all(r[1] == "stuck" for r in rows)
        query, params = q.explain(analyze=True, buffers=True)
        plan = conn.execute(query, params).fetchone()[0]
        assert plan[0]["Plan"]["Node Type"]
        frame = q.fetch_frame(conn)
        assert list(frame.columns) == ["id", "status"]


def test_batches_are_chunked_under_the_parameter_limit() -> None:
    b = BatchInsertBuilder("network_stats", "chain_id", "date", "total_packets", max_parameters=10)
    for i in range(7):
        b.add_row(f"c{i}", date(2026, 1, 1), i)
    stmts = b.on_conflict_do_update(["chain_id", "date"]).statements()
    assert [len(p) for _, p in stmts] == [9, 9, 3]
    text = stmts[0][0].as_string(None)
    assert text == (
        'INSERT INTO "network_stats" ("chain_id", "date", "total_packets") VALUES (%s, %s, %s), (%s, %s, %s), (%s, %s, %s)'
        ' ON CONFLICT ("chain_id", "date") DO UPDATE SET "total_packets" = EXCLUDED."total_packets"'
    )
    default = BatchInsertBuilder("t", *[f"c{i}" for i in range(10)])
    assert default.rows_per_statement == 6553


@pytest.mark.parametrize(
    "clause",
    [
        "(chain_id, date) DO UPDATE SET total_packets = EXCLUDED.total_packets",  # the seed's form
        "ON CONFLICT (chain_id, date) DO UPDATE SET total_packets = EXCLUDED.total_packets",
        "  on conflict (chain_id, date) do update set total_packets = EXCLUDED.total_packets",
    ],
)
def test_the_seeds_conflict_clause_is_taken_with_or_without_its_prefix(clause: str) -> None:
    b = BatchInsertBuilder("network_stats", "chain_id", "date", "total_packets").add_row("a", 1, 2)
    (statement, params), *_ = b.on_conflict(clause).statements()
    text = statement.as_string(None).upper()
    assert text.endswith(
        "ON CONFLICT (CHAIN_ID, DATE) DO UPDATE SET TOTAL_PACKETS = EXCLUDED.TOTAL_PACKETS"
    ), text
    assert text.count("ON CONFLICT") == 1
    assert params == ["a", 1, 2]


@pytest.mark.db
def test_upserts_under_concurrent_writers(schema_dsn: str) -> None:
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM network_stats WHERE chain_id LIKE 'upsert-%'")
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            with psycopg.connect(schema_dsn) as conn:
                for round_ in range(5):
                    b = BatchInsertBuilder("network_stats", "chain_id", "date", "total_packets")
                    for chain in range(20):
                        b.add_row(f"upsert-{chain}", date(2026, 1, 1), worker * 100 + round_)
                    b.on_conflict(
                        "ON CONFLICT (chain_id, date) DO UPDATE SET total_packets = network_stats.total_packets + 1"
                    )
                    assert b.execute(conn).rows_affected == 20
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT count(*), sum(total_packets) FROM network_stats WHERE chain_id LIKE 'upsert-%'"
        ).fetchone()
        # 20 rows; each saw 1 insert and 19 increments: first value (some worker*100+round) + 19
        assert rows[0] == 20
        per_row = conn.execute(
            "SELECT DISTINCT total_packets - 19 FROM network_stats WHERE chain_id LIKE 'upsert-%'"
        ).fetchall()
        assert all(v[0] in {w * 100 + r for w in range(4) for r in range(5)} for v in per_row)
        b = BatchInsertBuilder("network_stats", "chain_id", "date", "total_packets").add_row(
            "upsert-0", date(2026, 1, 1), 1
        )
        assert b.on_conflict_do_nothing("chain_id", "date").execute(conn).rows_affected == 0
        conn.execute("DELETE FROM network_stats WHERE chain_id LIKE 'upsert-%'")


@pytest.mark.db
def test_copy_fast_path_appends(schema_dsn: str) -> None:
    with psycopg.connect(schema_dsn) as conn:
        b = BatchInsertBuilder("network_stats", "chain_id", "date", "total_packets")
        for i in range(50):
            b.add_row(f"copy-{i}", date(2026, 1, 2), i)
        assert b.copy(conn).rows_affected == 50
        assert conn.execute(
            "SELECT count(*) FROM network_stats WHERE chain_id LIKE 'copy-%'"
        ).fetchone() == (50,)
        conn.execute("DELETE FROM network_stats WHERE chain_id LIKE 'copy-%'")
        conn.commit()
    with pytest.raises(ConfigError, match="COPY cannot handle ON CONFLICT"):
        b.on_conflict_do_nothing().copy(conn)  # type: ignore[arg-type]
