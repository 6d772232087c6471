"""Schema migrations, compatible with golang-migrate.

The files in ``schema/migrations`` follow golang-migrate's layout (``NNNNNN_name.up.sql`` and
``NNNNNN_name.down.sql``), and the state lives in its table ``schema_migrations(version bigint, dirty
boolean)`` under its advisory lock, so ``migrate -path schema/migrations -database $DATABASE_URL up`` and
``ibcbench schema up`` can take turns on one database.

Like golang-migrate, a migration is marked dirty before it runs and clean after; a failure leaves it
dirty and every later command refuses until ``ibcbench schema force V``. Unlike golang-migrate's single
``Exec``, a file runs inside an explicit transaction, so a failed file leaves no half-applied objects;
a file with ``CONCURRENTLY`` must hold a single statement and runs outside a transaction.

The kit never adopts or drops what it did not create. Before a migration runs, none of the tables,
views, indexes and functions its up file creates may exist already (``IF NOT EXISTS`` would adopt a
user's own table, which a later ``down`` would drop); the versions the kit applied itself are recorded
in ``ibcbench_schema_applied``, and ``down`` refuses a version it did not apply (a forced one). A
waiting ``schema up`` polls for the advisory lock from an idle session, so the ``CREATE INDEX
CONCURRENTLY`` of the session holding it does not wait for the waiters (which would deadlock), and
an INVALID index a failed ``CONCURRENTLY`` build left on the kit's tables is rebuilt by ``up``.
"""

from __future__ import annotations

from ibcbench.infra.migrate.apply import (
    MigrateResult,
    Migrator,
    force_version,
    migrate_down,
    migrate_up,
    schema_version,
)
from ibcbench.infra.migrate.files import Migration, default_migrations_dir, load_migrations
from ibcbench.infra.migrate.state import (
    APPLIED_TABLE,
    MIGRATIONS_TABLE,
    NIL_VERSION,
    advisory_lock_id,
    read_version,
)

__all__ = [
    "APPLIED_TABLE",
    "MIGRATIONS_TABLE",
    "NIL_VERSION",
    "MigrateResult",
    "Migration",
    "Migrator",
    "advisory_lock_id",
    "default_migrations_dir",
    "force_version",
    "load_migrations",
    "migrate_down",
    "migrate_up",
    "read_version",
    "schema_version",
]
