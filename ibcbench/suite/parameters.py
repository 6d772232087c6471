"""Notebook parameters, checked before any work: what a notebook's parameters cell declares, and
whether the values given for ``ibcbench run -p`` / ``run-all -p`` fit it (a light module: the CLI
refuses a bad value without importing pandas or papermill)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ibcbench.errors import ConfigError, RunError
from ibcbench.inputs import MAX_SEED, SETTING_RE, check_chunk_interval, check_name


def notebooks_dir() -> Path:
    """The notebooks the package carries: ``notebooks/`` in a checkout."""
    from ibcbench import _resources

    return _resources.folder("notebooks")


def numbered_notebooks(folder: Path | None = None) -> list[Path]:
    """The benchmark notebooks in reading order: ``NN_name.ipynb``."""
    base = folder or notebooks_dir()
    return sorted(p for p in base.glob("[0-9][0-9]_*.ipynb"))


#: numbered notebooks that check the kit, not the database: ``run-all`` runs them only when named
KIT_CHECK_NOTEBOOKS = ("08_faults.ipynb",)


def benchmark_notebooks(folder: Path | None = None) -> list[Path]:
    """What ``run-all`` runs by default: the numbered notebooks but the kit's own checks (the fault
    suite is its own command, ``ibcbench bench faults``, and ``run-all --notebooks 08``)."""
    return [p for p in numbered_notebooks(folder) if p.name not in KIT_CHECK_NOTEBOOKS]


def parse_parameter(raw: str) -> Any:
    """A ``-p key value`` value: JSON when it parses (numbers, true/false, null, lists), else the string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def notebook_path(notebook: Path | str) -> Path:
    """``notebook`` as given, else the notebook of that name in ``notebooks/``."""
    source = Path(notebook)
    if source.is_file():
        return source
    candidate = notebooks_dir() / source.name
    if candidate.is_file():
        return candidate
    raise RunError(
        f"notebook {notebook} does not exist: give a notebook path, or one of "
        f"{', '.join(p.name for p in numbered_notebooks())}"
    )


#: parameters the kit itself passes to every notebook
KIT_PARAMETERS = ("dsn", "run_dir", "scale", "seed")
_ANY = object()  # a default that says nothing of the type (None, or not a literal)


def notebook_parameters(notebook: Path | str) -> dict[str, Any]:
    """The names of a notebook's parameters (its cell tagged ``parameters``) and their defaults;
    a default that is not a plain literal is left out of type checks."""
    import ast

    cells = json.loads(notebook_path(notebook).read_text()).get("cells", [])
    out: dict[str, Any] = {}
    for cell in cells:
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        source = "".join(cell.get("source", []))
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign):
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    value = _ANY
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        out[target.id] = _ANY if value is None else value
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a JSON list"
    if isinstance(value, dict):
        return "a JSON object"
    return type(value).__name__


#: the largest value of a numeric notebook parameter, by name; any other has :data:`MAX_NUMBER`,
#: or :data:`MAX_SECONDS` when its name ends in ``_s``
MAXIMA: dict[str, int | float] = {
    "seed": MAX_SEED,
    "repetitions": 100_000,
    "clients": 1_000,
    "path_clients": 1_000,
    "max_sizes": 1_000,
    "conflict_rows": 10_000_000,
    "conflict_rounds": 1_000,
}
MAX_NUMBER = 1_000_000
MAX_SECONDS = 3_600.0
#: a server setting's value given as a number in a string (``random_page_costs``)
_NUMBER_TEXT_RE = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")


def _maximum(name: str) -> int | float:
    return MAXIMA.get(name, MAX_SECONDS if name.endswith("_s") else MAX_NUMBER)


def _check_number(name: str, value: Any, default: int | float) -> str | None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or (isinstance(default, int) and not isinstance(value, int)):
        return f"must be {_kind(default)}"
    if not math.isfinite(value):
        return "must be a finite number"
    if name == "seed" and value < 0:
        return "must be 0 or more"
    if name != "seed" and not value > 0:
        return "must be above 0"
    if value > _maximum(name):
        return f"must be at most {_maximum(name)}"
    return None


def _check_text(name: str, value: str) -> str | None:
    """What is wrong with a string that becomes a name, an interval or a setting (None: nothing)."""
    try:
        if name == "name":
            check_name(value, "the name")
        elif name == "chunk_intervals":
            check_chunk_interval(value)
        elif name in ("strategies", "index_strategy"):
            from ibcbench.bench.indexes import STRATEGIES

            if value not in STRATEGIES:
                return f"is not an index strategy: use one of {', '.join(STRATEGIES)}"
        elif name == "random_page_costs" and not _NUMBER_TEXT_RE.fullmatch(value):
            return "is not a number such as '1.1'"
    except ConfigError as exc:
        return f"is invalid ({str(exc).split(': ', 1)[-1]})"
    return None


#: keys of a JSON object parameter that may be null whatever their default (a plan configuration's
#: ``index_strategy``: null keeps the indexes as they are)
NULLABLE_KEYS = frozenset({"index_strategy"})


def _check_dict(name: str, value: Any, default: dict) -> str | None:
    if not isinstance(value, dict):
        return f"must be {_kind(default)}"
    if name == "settings":
        for key, item in value.items():
            if not SETTING_RE.fullmatch(key):
                return f"has a setting name {key!r} that is invalid"
            if not isinstance(item, str):
                return f'has a setting {key} that must be a string, such as "4"'
        return None
    for key, item in value.items():
        if default and key not in default:
            return f"has no key {key!r}: its keys are {', '.join(default)}"
        if item is None and key in NULLABLE_KEYS:
            continue
        if key in default:
            inner = default[key]
            problem = _check_value(key, item, _ANY if inner is None else inner)
            if problem is None and inner is None and item is not None:
                problem = (
                    _check_value(key, item, "")
                    if isinstance(item, str)
                    else "must be a string or null"
                )
            if problem:
                return f"has {key} that {problem}"
    return None


def _check_value(name: str, value: Any, default: Any) -> str | None:
    """What is wrong with ``value`` for a parameter whose default is ``default`` (None: nothing)."""
    if default is _ANY:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"must be {_kind(default)}"
    if isinstance(default, int | float):
        return _check_number(name, value, default)
    if isinstance(default, str):
        return _check_text(name, value) if isinstance(value, str) else f"must be {_kind(default)}"
    if isinstance(default, list | tuple):
        if not isinstance(value, list):
            return f"must be {_kind(default)}, e.g. {json.dumps(list(default))}"
        if not value:
            return "must not be empty"
        if len(value) > MAX_LIST:
            return f"must have at most {MAX_LIST} items"
        if default:
            for item in value:
                problem = _check_value(name, item, default[0])
                if problem:
                    return f"has an item {json.dumps(item, default=str)} that {problem}"
        return None
    if isinstance(default, dict):
        return _check_dict(name, value, default)
    return None


#: the most items of a list parameter
MAX_LIST = 100


def validate_parameters(
    notebook: Path | str, parameters: Mapping[str, Any], *, unknown_ok: bool = False
) -> Path:
    """Refuse, in one line and before any work, a parameter ``notebook`` does not have (unless
    ``unknown_ok``), a value of another kind than its default, a size of 0 or less, an unknown
    scale; returns the notebook's path."""
    path = notebook_path(notebook)
    known = notebook_parameters(path)
    for name, value in parameters.items():
        if name not in known:
            if unknown_ok or name in KIT_PARAMETERS:
                continue
            raise ConfigError(
                f"notebook {path.name} has no parameter {name!r}: its parameters are "
                f"{', '.join(n for n in known if n not in ('dsn', 'run_dir'))}"
            )
        problem = _check_value(name, value, known[name])
        if problem:
            raise ConfigError(
                f"parameter {name} of {path.name} {problem}, not {json.dumps(value, default=str)}: "
                f"give one like its default, {json.dumps(known[name], default=str)}"
            )
    if "scale" in parameters or "seed" in parameters:
        from ibcbench.data.datasets import validate_dataset

        validate_dataset(parameters.get("scale", "tiny"), parameters.get("seed", 42))
    return path


def validate_run_all(
    scale: str,
    seed: int,
    extra: Mapping[str, Any] | None = None,
    notebooks: Sequence[Path] | None = None,
) -> list[Path]:
    """What :func:`run_all` refuses before any work: an unknown scale, a parameter that none of the
    notebooks has, a value of the wrong kind for one that has it. Returns the notebooks to run."""
    from ibcbench.data.datasets import validate_dataset

    validate_dataset(scale, seed)
    chosen = list(notebooks) if notebooks is not None else benchmark_notebooks()
    if not chosen:
        raise RunError(f"no numbered notebooks in {notebooks_dir()}")
    extra = dict(extra or {})
    known: set[str] = set(KIT_PARAMETERS)
    for nb in chosen:
        validate_parameters(nb, extra, unknown_ok=True)
        known |= set(notebook_parameters(nb))
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ConfigError(
            f"no notebook has a parameter {', '.join(map(repr, unknown))}: see the parameters cell "
            "of each notebook in notebooks/"
        )
    return chosen
