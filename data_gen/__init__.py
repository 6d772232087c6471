"""Synthetic multi-chain IBC traffic: realistic, reproducible from a seed, vectorized.

No database imports here: the generator hands numpy/pandas column arrays to whoever loads them
(see :mod:`data_gen.tables` for the contract).
"""

from data_gen.errors import ParamError
from data_gen.generate import GENERATOR_VERSION, Generation, TableBatch, generate
from data_gen.network import build_network, voucher_denom
from data_gen.params import DEFAULT_START, PRESETS, GenerationParams, ResumeState

__all__ = [
    "DEFAULT_START",
    "GENERATOR_VERSION",
    "PRESETS",
    "Generation",
    "GenerationParams",
    "ParamError",
    "ResumeState",
    "TableBatch",
    "build_network",
    "generate",
    "voucher_denom",
]
