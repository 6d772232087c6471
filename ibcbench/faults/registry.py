"""The fault suite's registry: what a fault is, what it reports, and where faults are found.

Each fault is a function registered with :func:`fault` under its group. It gets a
:class:`~ibcbench.faults.lab.FaultLab` and returns one :class:`FaultOutcome` per case: what was
expected, what happened, the kit's rows before and after, and the verdict. A group's faults live in
a module of :mod:`ibcbench.faults.cases`, imported by :func:`registered_faults` (registration
happens on import).

A case that is bad input (``bad_input=True``) must be rejected with one line on stderr that says
what to do next, before any work: no run folder, no rows. ``fast`` faults run at every scale; the
others (several minutes between them: whole notebook runs, two ``run-all`` at once) only from
``small`` up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ibcbench.faults.lab import FaultLab


@dataclass(frozen=True)
class FaultOutcome:
    """One injected fault or bad input, and what the kit did about it."""

    group: str
    fault: str
    expected: str
    happened: str
    survived: bool
    rows_before: int | None = None
    rows_after: int | None = None
    #: rows of the kit's data that a fault lost (or doubled): compared with a clean reference
    rows_lost: int = 0
    #: from the fault to the kit working again (a rerun converged, the runner reconnected), seconds
    recovery_s: float | None = None
    bad_input: bool = False
    #: False when the fault could not be injected here (``happened`` says why): neither survived
    #: nor failed, and counted apart in the summary line
    ran: bool = True

    @property
    def verdict(self) -> str:
        if not self.ran:
            return "not run"
        return "survived" if self.survived else "FAILED"


@dataclass(frozen=True)
class Fault:
    name: str
    group: str
    fast: bool
    run: Callable[[FaultLab], FaultOutcome | Sequence[FaultOutcome]]


_REGISTRY: dict[str, Fault] = {}


def fault(group: str, *, fast: bool = True) -> Callable[[Callable], Callable]:
    """Register a fault function ``f(lab) -> FaultOutcome | list[FaultOutcome]`` under its name."""

    def register(func: Callable) -> Callable:
        name = func.__name__.removeprefix("fault_")
        if name in _REGISTRY:
            raise ValueError(f"fault {name!r} is registered twice")
        _REGISTRY[name] = Fault(name, group, fast, func)
        return func

    return register


def registered_faults() -> list[Fault]:
    """Every fault, in registration order; each group's faults live in a module of
    :mod:`ibcbench.faults.cases`, imported here (registration happens on import)."""
    import importlib
    import pkgutil

    import ibcbench.faults.cases as cases

    for info in sorted(pkgutil.iter_modules(cases.__path__), key=lambda m: m.name):
        importlib.import_module(f"{cases.__name__}.{info.name}")
    return list(_REGISTRY.values())
