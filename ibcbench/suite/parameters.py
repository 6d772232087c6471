"""Notebook parameters, checked before any work: what a notebook's parameters cell declares, and
whether the values given for ``ibcbench run -p`` / ``run-all -p`` fit it (a light module: the CLI
refuses a bad value without importing pandas or papermill)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ibcbench.errors import ConfigError, RunError


def notebooks_dir() -> Path:
    """The notebooks the package carries: ``notebooks/`` in a checkout."""
    from ibcbench import _resources

    return _resources.folder("notebooks")


def numbered_notebooks(folder: Path | None = None) -> list[Path]:
    """The benchmark notebooks in reading order: ``NN_name.ipynb``."""
    base = folder or notebooks_dir()
    return sorted(p for p in base.glob("[0-9][0-9]_*.ipynb"))


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


def _check_value(name: str, value: Any, default: Any) -> str | None:
    """What is wrong with ``value`` for a parameter whose default is ``default`` (None: nothing)."""
    if default is _ANY:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"must be {_kind(default)}"
    if isinstance(default, int | float):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or (isinstance(default, int) and not isinstance(value, int)):
            return f"must be {_kind(default)}"
        low = 0 if name == "seed" else None
        if low is not None and value < low:
            return "must be 0 or more"
        if low is None and not value > 0:
            return "must be above 0"
        return None
    if isinstance(default, str):
        return None if isinstance(value, str) else f"must be {_kind(default)}"
    if isinstance(default, list | tuple):
        if not isinstance(value, list):
            return f"must be {_kind(default)}, e.g. {json.dumps(list(default))}"
        if not value:
            return "must not be empty"
        if default:
            for item in value:
                problem = _check_value(name, item, default[0])
                if problem:
                    return f"has an item {json.dumps(item, default=str)} that {problem}"
        return None
    if isinstance(default, dict):
        return None if isinstance(value, dict) else f"must be {_kind(default)}"
    return None


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
    chosen = list(notebooks) if notebooks is not None else numbered_notebooks()
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
