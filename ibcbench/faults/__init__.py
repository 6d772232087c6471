"""The fault suite (``ibcbench bench faults``): faults injected into the kit, and what it did.

``registry`` (what a fault is), ``lab`` (a cluster and workspace of the suite's own), ``tmpfs`` (a
small filesystem to fill), ``run`` (the suite and its table); the faults themselves, one module per
group, in ``cases/``.
"""
