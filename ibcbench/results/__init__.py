"""Results: run folders and their manifests, recorded values and figures, run comparisons.

May import the infrastructure only. Benchmarks write through it; the report reads through it.
"""
