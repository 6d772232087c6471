"""The infrastructure: the embedded server and its members, the schema's migrations, status.

``server`` (a cluster the kit owns) with ``serverconf``, ``serveruser``, ``serverauth``,
``extensions`` and ``pidfile``; ``scaleout`` (its standbys and PgBouncer) with ``members``,
``standbys``, ``pgbouncer`` and ``memberstatus``; ``migrate/`` (golang-migrate files applied by
the kit); ``status`` (what a server holds).
"""
