"""ibcbench: a notebook-driven benchmarking kit for an IBC clearing and relayer analytics database."""

from __future__ import annotations

__version__ = "0.1.0"
