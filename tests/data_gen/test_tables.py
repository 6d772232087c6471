"""data_gen.tables: the column contract the generator and the loader share."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from data_gen.tables import DERIVED_KEYS, DERIVED_TABLES, FACT_TABLES, TABLES

MIGRATION = (
    Path(__file__).resolve().parents[2] / "schema/migrations/000002_create_core_tables.up.sql"
)


def test_fact_and_derived_tables_are_all_the_tables_in_copy_order() -> None:
    assert (*FACT_TABLES, *DERIVED_TABLES) == tuple(TABLES)
    for table, key in DERIVED_KEYS.items():
        assert set(key) <= {c for c, _ in TABLES[table]}


@pytest.mark.parametrize("table", list(TABLES))
def test_every_generated_column_is_in_the_migrations_table_with_its_type(table: str) -> None:
    sql = MIGRATION.read_text()
    body = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", sql, re.S)
    assert body, f"{table} not in {MIGRATION.name}"
    for column, pg_type in TABLES[table]:
        line = rf"^\s+{column}\s+{re.escape(pg_type)}(\s|,|$)"
        assert re.search(line, body.group(1), re.M), (column, pg_type)
