"""CLI command modules; each defines ``register(subparsers)``. Discovered by :mod:`ibcbench.cli`."""
