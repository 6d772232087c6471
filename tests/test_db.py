"""ibcbench.db: frames through SQLAlchemy on the psycopg driver, and connection errors as one line."""

from __future__ import annotations

import pytest

from ibcbench.db import create_engine, query_frame, read_frames
from ibcbench.errors import ConnectionFailed


@pytest.mark.db
def test_read_frames_binds_parameters_and_returns_numeric_as_float(server_dsn: str) -> None:
    frames = read_frames(
        server_dsn,
        {
            "numbers": "SELECT g AS n, (g / 3.0)::numeric(10, 4) AS third, g % 2 = 0 AS even "
            "FROM generate_series(1, :upto) AS g ORDER BY g",
            "one": "SELECT :word AS word",
        },
        params={"upto": 6, "word": "ibc"},
    )
    numbers = frames["numbers"]
    assert list(numbers.columns) == ["n", "third", "even"]
    assert numbers.n.tolist() == [1, 2, 3, 4, 5, 6]
    assert numbers.third.dtype == "float64"
    assert numbers.third.iloc[2] == pytest.approx(1.0)
    assert numbers.even.tolist() == [False, True, False, True, False, True]
    assert frames["one"].word.tolist() == ["ibc"]


@pytest.mark.db
def test_the_engine_reaches_the_server_through_its_unix_socket(server_dsn: str) -> None:
    assert "host=/" in server_dsn  # the test server's DSN is a socket, which a URL could not hold
    engine = create_engine(server_dsn)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT current_database()").scalar() == "postgres"
    finally:
        engine.dispose()


@pytest.mark.db
def test_query_frame_takes_a_connection_or_a_pool(server_dsn: str) -> None:
    from ibcbench import PoolConfig, create_pool
    from ibcbench.db import connect

    with connect(server_dsn) as conn:
        assert query_frame(conn, "SELECT %s::int AS x", (7,)).x.tolist() == [7]
    with create_pool(PoolConfig(min_size=1, max_size=1), server_dsn) as pool:
        assert query_frame(pool, "SELECT 8 AS x").x.tolist() == [8]


def test_an_unreachable_server_is_one_line_with_the_next_step() -> None:
    with pytest.raises(
        ConnectionFailed, match=r"cannot connect to .*:1/x: .*ibcbench db up"
    ) as info:
        read_frames("postgresql://nobody:secret@127.0.0.1:1/x", {"a": "SELECT 1"})
    assert "\n" not in str(info.value) and "secret" not in str(info.value)
