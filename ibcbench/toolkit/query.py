"""Query builders in the seed's spirit, safe by construction.

``QueryBuilder`` is immutable: every call returns a new builder. Identifiers (tables, columns) are
validated and quoted with ``psycopg.sql.Identifier``; values are always bound as parameters, never
spliced into the text. A condition is a SQL fragment written by the developer with the seed's ``$N``
placeholders (or ``%s``): the N are numbered per condition and renumbered when conditions are combined,
so ``.where("status = $1", "stuck").where("created_at > $2", t)`` and ``.where("created_at > $1", t)``
both work. Fragments with ``;`` or comments are refused: they are never needed in a condition and are
how injected text usually ends one statement and starts another.

``BatchInsertBuilder`` writes multi-row INSERTs, chunked below PostgreSQL's 65535 bind parameters,
with ON CONFLICT DO NOTHING / DO UPDATE, and has a COPY fast path for plain appends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql

from ibcbench.errors import ConfigError

MAX_BIND_PARAMETERS = 65_535
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_PLACEHOLDER_RE = re.compile(r"\$(\d+)")
_FORBIDDEN_RE = re.compile(r";|--|/\*|\*/|\x00")


def identifier(name: str) -> sql.Composable:
    """A possibly schema-qualified identifier (``schema.table``), validated and quoted."""
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"identifier {name!r} is invalid: use letters, digits and '_' (optionally schema.name)"
        )
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENT_RE.fullmatch(p) for p in parts):
        raise ConfigError(
            f"identifier {name!r} is invalid: use letters, digits and '_' (optionally schema.name)"
        )
    return sql.Identifier(*parts)


def _check_fragment(fragment: str) -> None:
    if not isinstance(fragment, str) or not fragment.strip():
        raise ConfigError("a condition must be a non-empty SQL fragment")
    if _FORBIDDEN_RE.search(fragment):
        raise ConfigError(
            f"condition {fragment!r} contains ';' or a comment: pass values as parameters instead"
        )


def _convert(fragment: str, args: Sequence[Any]) -> tuple[str, list[Any]]:
    """A fragment with ``$N`` (or ``%s``) placeholders -> psycopg ``%s`` text and its ordered values."""
    _check_fragment(fragment)
    numbers = [int(n) for n in _PLACEHOLDER_RE.findall(fragment)]
    if numbers:
        if "%s" in fragment:
            raise ConfigError(f"condition {fragment!r} mixes $N and %s placeholders: use one style")
        distinct = sorted(set(numbers))
        if len(distinct) != len(args):
            raise ConfigError(
                f"condition {fragment!r} has {len(distinct)} placeholder(s) but {len(args)} value(s) were given"
            )
        rank = {n: i for i, n in enumerate(distinct)}
        values = [args[rank[n]] for n in numbers]
        text = _PLACEHOLDER_RE.sub("%s", fragment.replace("%", "%%"))
        return text, values
    count = fragment.count("%s")
    if count != len(args):
        raise ConfigError(
            f"condition {fragment!r} has {count} placeholder(s) but {len(args)} value(s) were given"
        )
    return fragment.replace("%", "%%").replace("%%s", "%s"), list(args)


@dataclass(frozen=True)
class Condition:
    text: str  # psycopg text with %s placeholders
    values: tuple[Any, ...]


@dataclass(frozen=True)
class QueryBuilder:
    """``QueryBuilder("packet_flow").select("id").where("status = $1", "stuck").limit(100)``."""

    table: str
    columns: tuple[str, ...] = ()
    conditions: tuple[Condition, ...] = ()
    ordering: tuple[tuple[str, bool], ...] = ()
    limit_n: int | None = None
    offset_n: int | None = None

    def __post_init__(self) -> None:
        identifier(self.table)

    def select(self, *columns: str) -> QueryBuilder:
        for c in columns:
            if c != "*":
                identifier(c)
        return replace(self, columns=self.columns + tuple(columns))

    def where(self, condition: str, *args: Any) -> QueryBuilder:
        """AND a raw SQL ``condition`` with ``$N`` (or ``%s``) placeholders for ``args``.

        ``condition`` is SQL code, put into the statement as written: never build it from input
        (only ``args`` are bound). A fragment with ``;`` (more than one statement) or a comment is
        refused, but nothing else in it is checked; for a column given at run time use
        :meth:`where_eq` or :meth:`where_in`, which quote it."""
        text, values = _convert(condition, args)
        return replace(self, conditions=(*self.conditions, Condition(text, tuple(values))))

    def where_eq(self, column: str, value: Any) -> QueryBuilder:
        identifier(column)
        return replace(
            self, conditions=(*self.conditions, Condition(f"{_quoted(column)} = %s", (value,)))
        )

    def where_in(self, column: str, values: Iterable[Any]) -> QueryBuilder:
        identifier(column)
        return replace(
            self,
            conditions=(
                *self.conditions,
                Condition(f"{_quoted(column)} = ANY(%s)", (list(values),)),
            ),
        )

    def order_by(self, column: str, *, desc: bool = False) -> QueryBuilder:
        identifier(column)
        return replace(self, ordering=(*self.ordering, (column, desc)))

    def limit(self, n: int) -> QueryBuilder:
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ConfigError(f"limit must be a non-negative integer, not {n!r}")
        return replace(self, limit_n=n)

    def offset(self, n: int) -> QueryBuilder:
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ConfigError(f"offset must be a non-negative integer, not {n!r}")
        return replace(self, offset_n=n)

    # ---- output ---------------------------------------------------------------------------
    def build(self) -> tuple[sql.Composed, list[Any]]:
        """The statement (psycopg ``%s`` placeholders) and its parameters in order."""
        cols = (
            sql.SQL(", ").join(sql.SQL("*") if c == "*" else identifier(c) for c in self.columns)
            if self.columns
            else sql.SQL("*")
        )
        parts: list[sql.Composable] = [
            sql.SQL("SELECT "),
            cols,
            sql.SQL(" FROM "),
            identifier(self.table),
        ]
        params: list[Any] = []
        if self.conditions:
            parts.append(sql.SQL(" WHERE "))
            parts.append(
                sql.SQL(" AND ").join(sql.SQL("(" + c.text + ")") for c in self.conditions)
            )
            for c in self.conditions:
                params.extend(c.values)
        if self.ordering:
            parts.append(sql.SQL(" ORDER BY "))
            parts.append(
                sql.SQL(", ").join(
                    sql.Composed([identifier(c), sql.SQL(" DESC" if d else " ASC")])
                    for c, d in self.ordering
                )
            )
        if self.limit_n is not None:
            parts.append(sql.SQL(" LIMIT %s"))
            params.append(self.limit_n)
        if self.offset_n is not None:
            parts.append(sql.SQL(" OFFSET %s"))
            params.append(self.offset_n)
        return sql.Composed(parts), params

    def to_sql(self, *, numbered: bool = True) -> tuple[str, list[Any]]:
        """Plain text: ``$1..$n`` placeholders renumbered across conditions (``numbered``), or ``%s``."""
        query, params = self.build()
        text = query.as_string(None)
        if numbered:
            counter = iter(range(1, len(params) + 1))
            text = re.sub(r"(?<!%)%s", lambda _: f"${next(counter)}", text).replace("%%", "%")
        return text, params

    def explain(
        self, *, analyze: bool = False, buffers: bool = False, fmt: str = "json"
    ) -> tuple[sql.Composed, list[Any]]:
        """The statement wrapped in EXPLAIN (options validated)."""
        if fmt.lower() not in ("json", "text", "yaml", "xml"):
            raise ConfigError(f"EXPLAIN format {fmt!r} is invalid: use json, text, yaml or xml")
        options = [f"FORMAT {fmt.upper()}"]
        if analyze:
            options.insert(0, "ANALYZE")
        if buffers:
            options.insert(1 if analyze else 0, "BUFFERS")
        query, params = self.build()
        return sql.Composed([sql.SQL(f"EXPLAIN ({', '.join(options)}) "), query]), params

    def execute(self, target: Any) -> list[tuple[Any, ...]]:
        """Run on a connection or a pool; returns the rows."""
        query, params = self.build()
        if hasattr(target, "connection") and callable(target.connection):
            with target.connection() as conn:
                return conn.execute(query, params).fetchall()
        return target.execute(query, params).fetchall()

    def fetch_frame(self, target: Any) -> Any:
        """Run on a connection or pool and return a pandas DataFrame with the column names."""
        from ibcbench.db import query_frame

        return query_frame(target, *self.build())


def _quoted(column: str) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in column.split("."))


# ---- batch inserts -------------------------------------------------------------------------------
#: the seed's raw conflict clause, with or without its ``ON CONFLICT`` prefix: a target (column list or
#: ``ON CONSTRAINT name``) or none, then ``DO NOTHING`` / ``DO UPDATE SET ...``
_RAW_CONFLICT_RE = re.compile(
    r"^\s*(?P<prefix>ON\s+CONFLICT\b\s*)?(?P<rest>(\(|ON\s+CONSTRAINT\b|DO\s+(NOTHING|UPDATE)\b).*)$",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class BatchResult:
    rows_affected: int
    statements: int
    rows: int


@dataclass
class BatchInsertBuilder:
    """``BatchInsertBuilder("network_stats", "chain_id", "date", "total_packets").add_row(...)``."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    conflict: sql.Composable | None = None
    max_parameters: int = MAX_BIND_PARAMETERS

    def __init__(
        self, table: str, *columns: str, max_parameters: int = MAX_BIND_PARAMETERS
    ) -> None:
        identifier(table)
        if not columns:
            raise ConfigError("BatchInsertBuilder needs at least one column")
        for c in columns:
            identifier(c)
        if len(set(columns)) != len(columns):
            raise ConfigError("BatchInsertBuilder columns must be distinct")
        if not 1 <= max_parameters <= MAX_BIND_PARAMETERS:
            raise ConfigError(f"max_parameters must be between 1 and {MAX_BIND_PARAMETERS}")
        if len(columns) > max_parameters:
            raise ConfigError("more columns than bind parameters allowed in one statement")
        self.table = table
        self.columns = tuple(columns)
        self.rows = []
        self.conflict: sql.Composable | None = None
        self.max_parameters = max_parameters

    def add_row(self, *values: Any) -> BatchInsertBuilder:
        if len(values) != len(self.columns):
            raise ConfigError(f"add_row got {len(values)} values for {len(self.columns)} columns")
        self.rows.append(tuple(values))
        return self

    def add_rows(self, rows: Iterable[Sequence[Any]]) -> BatchInsertBuilder:
        for row in rows:
            self.add_row(*row)
        return self

    def on_conflict_do_nothing(self, *target: str) -> BatchInsertBuilder:
        tgt: sql.Composable = sql.SQL("")
        if target:
            tgt = sql.SQL(" ({})").format(sql.SQL(", ").join(identifier(c) for c in target))
        self.conflict = sql.Composed([sql.SQL(" ON CONFLICT"), tgt, sql.SQL(" DO NOTHING")])
        return self

    def on_conflict_do_update(
        self, target: Sequence[str], update: Sequence[str] | None = None
    ) -> BatchInsertBuilder:
        """``ON CONFLICT (target) DO UPDATE SET c = EXCLUDED.c`` for ``update`` (default: the other columns)."""
        if not target:
            raise ConfigError("on_conflict_do_update needs the conflict target columns")
        cols = list(update) if update is not None else [c for c in self.columns if c not in target]
        if not cols:
            raise ConfigError(
                "on_conflict_do_update has nothing to update: every column is in the target"
            )
        for c in cols:
            if c not in self.columns:
                raise ConfigError(f"column {c!r} is not inserted, so EXCLUDED.{c} does not exist")
        self.conflict = sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
            sql.SQL(", ").join(identifier(c) for c in target),
            sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(identifier(c), identifier(c)) for c in cols
            ),
        )
        return self

    def on_conflict(self, clause: str) -> BatchInsertBuilder:
        """The seed's raw form, ``"(chain_id, date) DO UPDATE SET total_packets = EXCLUDED.total_packets"``,
        with or without the leading ``ON CONFLICT``.

        ``clause`` is SQL code, put into the statement as written and with no parameters: never
        build it from input. One with ``;`` (more than one statement), a comment or a placeholder is
        refused; for columns given at run time use :meth:`on_conflict_do_update` or
        :meth:`on_conflict_do_nothing`, which quote them."""
        match = _RAW_CONFLICT_RE.match(clause) if isinstance(clause, str) else None
        if match is None:
            raise ConfigError(
                "an on_conflict clause is a target and an action, such as "
                "'(chain_id, date) DO UPDATE SET total_packets = EXCLUDED.total_packets' or 'DO NOTHING'"
            )
        _check_fragment(clause)
        if "%" in clause or "$" in clause:
            raise ConfigError(
                "an on_conflict clause takes no parameters: use on_conflict_do_update"
            )
        self.conflict = sql.SQL(" ON CONFLICT " + match.group("rest").strip())
        return self

    @property
    def rows_per_statement(self) -> int:
        return max(1, self.max_parameters // len(self.columns))

    def statements(self) -> list[tuple[sql.Composed, list[Any]]]:
        """One INSERT per chunk of rows, each under the bind-parameter limit."""
        out = []
        head = sql.SQL("INSERT INTO {} ({}) VALUES ").format(
            identifier(self.table), sql.SQL(", ").join(identifier(c) for c in self.columns)
        )
        one = sql.SQL("(" + ", ".join(["%s"] * len(self.columns)) + ")")
        step = self.rows_per_statement
        for i in range(0, len(self.rows), step):
            chunk = self.rows[i : i + step]
            values = sql.SQL(", ").join([one] * len(chunk))
            parts: list[sql.Composable] = [head, values]
            if self.conflict is not None:
                parts.append(self.conflict)
            out.append((sql.Composed(parts), [v for row in chunk for v in row]))
        return out

    def execute(self, conn: psycopg.Connection) -> BatchResult:
        """Run every chunk in one transaction; ``rows_affected`` counts inserted + updated rows."""
        affected = 0
        stmts = self.statements()
        with conn.transaction(), conn.cursor() as cur:
            for query, params in stmts:
                cur.execute(query, params)
                affected += max(cur.rowcount, 0)
        return BatchResult(affected, len(stmts), len(self.rows))

    def copy(self, conn: psycopg.Connection) -> BatchResult:
        """The fast path for plain appends: COPY, no conflict handling."""
        if self.conflict is not None:
            raise ConfigError("COPY cannot handle ON CONFLICT: use execute() for upserts")
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            identifier(self.table), sql.SQL(", ").join(identifier(c) for c in self.columns)
        )
        with conn.transaction(), conn.cursor() as cur, cur.copy(stmt) as copy:
            for row in self.rows:
                copy.write_row(row)
        return BatchResult(len(self.rows), 1, len(self.rows))
