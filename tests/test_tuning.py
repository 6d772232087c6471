"""Tuning recommendations by the seed's rules."""

from __future__ import annotations

import psycopg
import pytest

from ibcbench.errors import ConfigError
from ibcbench.toolkit.tuning import as_config, compare_with_server, recommend_settings


@pytest.mark.parametrize(
    ("ram_gb", "conns", "storage", "expected"),
    [
        (
            16,
            100,
            "ssd",
            {
                "shared_buffers": "4GB",
                "effective_cache_size": "12GB",
                "maintenance_work_mem": "1GB",
                "work_mem": "40MB",
                "random_page_cost": "1.1",
                "effective_io_concurrency": "200",
            },
        ),
        (
            64,
            200,
            "hdd",
            {
                "shared_buffers": "16GB",
                "maintenance_work_mem": "2GB",
                "work_mem": "81MB",
                "random_page_cost": "4",
                "max_wal_size": "2GB",
            },
        ),
        (
            1,
            500,
            "network",
            {"shared_buffers": "256MB", "work_mem": "4MB", "random_page_cost": "1.5"},
        ),
    ],
)
def test_rules(ram_gb: float, conns: int, storage: str, expected: dict[str, str]) -> None:
    recs = dict(
        zip(
            *recommend_settings(ram_gb=ram_gb, max_connections=conns, storage=storage, cores=2)[
                ["setting", "recommended"]
            ].T.values,
            strict=True,
        )
    )
    for key, value in expected.items():
        assert recs[key] == value, key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ram_gb": 0}, "ram_gb must be greater than 0"),
        ({"storage": "tape"}, "storage 'tape' is unknown"),
        ({"max_connections": 0}, "max_connections must be greater"),
    ],
)
def test_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        recommend_settings(**kwargs)


def test_config_snippet() -> None:
    text = as_config(recommend_settings(ram_gb=8, cores=2))
    assert "shared_buffers = 2GB    # 25% of RAM" in text


@pytest.mark.db
def test_compare_shows_current_values(schema_dsn: str) -> None:
    with psycopg.connect(schema_dsn) as conn:
        out = compare_with_server(conn, recommend_settings(ram_gb=8, cores=2))
    assert list(out.columns) == ["setting", "recommended", "current", "rule"]
    assert out.set_index("setting").loc["work_mem", "current"] == "16 MB"
