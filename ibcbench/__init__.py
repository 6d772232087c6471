"""ibcbench: a notebook-driven benchmarking kit for an IBC clearing and relayer analytics database.

The data-access toolkit is importable from here: ``from ibcbench import PoolConfig, create_pool,
QueryBuilder, BatchInsertBuilder, QueryCache``. Imports are lazy so the CLI starts fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "PoolConfig": "ibcbench.pool",
    "PoolStats": "ibcbench.pool",
    "create_pool": "ibcbench.pool",
    "create_async_pool": "ibcbench.pool",
    "QueryBuilder": "ibcbench.query",
    "BatchInsertBuilder": "ibcbench.query",
    "QueryCache": "ibcbench.cache",
    "recommend_settings": "ibcbench.tuning",
    "ensure_dataset": "ibcbench.datasets",
    "load_dataset": "ibcbench.load",
    "migrate_up": "ibcbench.migrate",
    "record": "ibcbench.notebook",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ibcbench' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
