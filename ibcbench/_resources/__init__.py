"""The package's data folders: ``migrations`` (golang-migrate files) and ``notebooks``.

In the source tree each is a symlink to the one copy at the top level (``schema/migrations``,
``notebooks``); a wheel or an sdist carries the files themselves, so an editable install, a checkout
on ``PYTHONPATH`` and an installed wheel read them through the same name.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

#: folders extracted to a temporary directory (a package imported from a zip), removed at exit
_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


def folder(name: str) -> Path:
    """The real folder of the package's data folder ``name`` (symlinks resolved)."""
    entry = resources.files(__name__) / name
    if isinstance(entry, Path):
        return entry.resolve()
    return _EXTRACTED.enter_context(resources.as_file(entry))
