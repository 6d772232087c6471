"""Data: the generator's output into the database (binary COPY, datasets, views) and its profile.

May import the infrastructure (``ibcbench.db``, ``migrate``, ``status``, ``settings``, ``errors``) and
``data_gen``; never the toolkit, the benchmarks, results or the suite.
"""
