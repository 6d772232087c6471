"""Reading the migration folder: golang-migrate's file names, up/down pairs, what an up file creates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ibcbench.errors import ConfigError, MigrationError

_FILE_RE = re.compile(r"(\d+)_([\w-]+)\.(up|down)\.sql")
_CREATES_RE = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:UNIQUE\s+)?(TABLE|INDEX|MATERIALIZED\s+VIEW|VIEW|FUNCTION)\s+"
    r"(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_]\w*)",
    re.IGNORECASE,
)


def default_migrations_dir() -> Path:
    """The migrations the package carries: ``schema/migrations`` in a checkout (``--path`` picks another)."""
    from ibcbench import _resources

    return _resources.folder("migrations")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_path: Path
    down_path: Path | None

    @property
    def label(self) -> str:
        return f"{self.version:06d}_{self.name}"

    def text(self, direction: str) -> str:
        path = self.up_path if direction == "up" else self.down_path
        if path is None:
            raise MigrationError(f"migration {self.label} has no down file: it cannot be reverted")
        return path.read_text()

    @property
    def creates(self) -> dict[str, str]:
        """The objects the up file creates: name -> kind (``function``, ``index`` or ``relation``)."""
        out: dict[str, str] = {}
        for kind, name in _CREATES_RE.findall(strip_comments(self.up_path.read_text())):
            kind = kind.upper()
            out[name] = (
                "function" if kind == "FUNCTION" else "index" if kind == "INDEX" else "relation"
            )
        return out


def load_migrations(path: Path | None = None) -> list[Migration]:
    """Read and check the migration folder: pairs, unique versions, names in golang-migrate's form."""
    folder = Path(path) if path else default_migrations_dir()
    if not folder.is_dir():
        raise ConfigError(
            f"migrations folder {folder} does not exist: pass --path to the schema folder"
        )
    ups: dict[int, tuple[str, Path]] = {}
    downs: dict[int, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.suffix != ".sql":
            continue
        match = _FILE_RE.fullmatch(entry.name)
        if not match:
            raise ConfigError(
                f"{entry.name} is not a migration file name: use NNNNNN_name.up.sql / .down.sql"
            )
        version, name, direction = int(match.group(1)), match.group(2), match.group(3)
        target = ups if direction == "up" else downs
        if version in target:
            raise ConfigError(f"two {direction} migrations have version {version} in {folder}")
        if direction == "up":
            ups[version] = (name, entry)
        else:
            downs[version] = entry
    orphans = sorted(set(downs) - set(ups))
    if orphans:
        raise ConfigError(f"down migration {orphans[0]} has no up file in {folder}")
    migrations = [
        Migration(version=v, name=ups[v][0], up_path=ups[v][1], down_path=downs.get(v))
        for v in sorted(ups)
    ]
    for m in migrations:
        for direction in ("up", "down"):
            if direction == "down" and m.down_path is None:
                continue
            if is_concurrent(m.text(direction)) and len(statements(m.text(direction))) != 1:
                raise ConfigError(
                    f"{m.label}.{direction}.sql uses CONCURRENTLY but holds several statements: "
                    "put that statement alone in its own migration"
                )
    return migrations


def strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def is_concurrent(text: str) -> bool:
    return (
        re.search(r"\bCONCURRENTLY\b", strip_comments(text), re.IGNORECASE) is not None
        and (
            re.search(
                r"^\s*(CREATE|DROP|REINDEX)\b", strip_comments(text), re.IGNORECASE | re.MULTILINE
            )
            is not None
        )
        and "$$" not in text
    )


def statements(text: str) -> list[str]:
    return [s for s in (part.strip() for part in strip_comments(text).split(";")) if s]
