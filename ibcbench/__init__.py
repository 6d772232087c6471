"""ibcbench: a notebook-driven benchmarking kit for an IBC clearing and relayer analytics database.

The data-access toolkit is importable from here: ``from ibcbench import PoolConfig, create_pool,
QueryBuilder, BatchInsertBuilder, QueryCache``. Imports are lazy so the CLI starts fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "PoolConfig": "ibcbench.toolkit.pool",
    "PoolStats": "ibcbench.toolkit.pool",
    "create_pool": "ibcbench.toolkit.pool",
    "create_async_pool": "ibcbench.toolkit.pool",
    "RoutingConfig": "ibcbench.toolkit.routing",
    "RoutedPool": "ibcbench.toolkit.routing",
    "create_routed_pool": "ibcbench.toolkit.routing",
    "QueryBuilder": "ibcbench.toolkit.query",
    "BatchInsertBuilder": "ibcbench.toolkit.query",
    "QueryCache": "ibcbench.toolkit.cache",
    "recommend_settings": "ibcbench.toolkit.tuning",
    "ensure_dataset": "ibcbench.data.datasets",
    "load_dataset": "ibcbench.data.load",
    "migrate_up": "ibcbench.infra.migrate",
    "record": "ibcbench.results.recorded",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ibcbench' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
