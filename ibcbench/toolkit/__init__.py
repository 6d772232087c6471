"""The seed's data-access toolkit: pool settings, query builder, batch upserts, TTL cache, monitoring
and tuning. Its public names are exported from :mod:`ibcbench` (``from ibcbench import PoolConfig``).

May import the infrastructure only (``ibcbench.db``, ``ibcbench.errors``).
"""
