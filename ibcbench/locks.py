"""Every advisory lock key the kit takes, in one place: which work excludes which, and no two collide.

The keys are 32-bit constants in the kit's own range (``0x1BCB....``). Migrations take golang-migrate's
lock instead (:func:`ibcbench.infra.migrate.state.advisory_lock_id`, a crc32 of the database, schema
and table names), so that the kit and ``migrate`` exclude each other.
"""

from __future__ import annotations

#: session lock in the server's ``postgres`` database: one ``run`` or ``run-all`` at a time per
#: server (the runs share its dataset databases, PgBouncer, the standby and the pg_cron jobs)
RUN_LOCK_KEY = 0x1BCB_4E11
#: transaction lock in the database a load writes: one load at a time per database
LOAD_LOCK = 0x1BCB_E4C0
#: session lock in the admin connection's database: one kit database created and marked at a time
CREATE_DATABASE_LOCK = 0x1BCB_D0B5

#: every key above, for a check that they stay distinct
ALL_KEYS = (RUN_LOCK_KEY, LOAD_LOCK, CREATE_DATABASE_LOCK)
