"""The suite: run the notebooks with papermill into a run folder, and build its HTML report.

The top library layer: may import everything below it; only the CLI imports it.
"""
