"""The faults, one module per group; :func:`ibcbench.faults.registry.registered_faults` imports each."""
