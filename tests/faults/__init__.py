"""Tests of ibcbench.faults, one file per module."""
