"""The benchmarks: the workload and its runners, index strategies, the pool sweep, TimescaleDB
layouts and features, maintenance, load throughput.

May import every lower layer: infrastructure, data, toolkit, plans and results. Nothing below imports
from here; the suite and the CLI do.
"""
