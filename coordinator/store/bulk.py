"""Many-row INSERTs and UPDATEs as one compiled statement and plain parameter rows.

SQLAlchemy's executemany builds each row's parameters through the statement: a dict per row,
then one bind-processor call per column per row (`construct_params`), the timestamps through
`UTCDateTime` and SQLite's DATETIME formatter every time. In a 10,000-device fan-out the report
writer spent most of its time there, not in the driver, although most values repeat (every row
of a tick has the same `updated_at`). Here the statement is compiled once per dialect and set of
columns, each row is a plain tuple in column order, every value goes through the same
processor SQLAlchemy would have used (`dialect_impl(...).bind_processor`), a repeated value
(hashable) is converted once per call, and the driver's `executemany` gets the rows as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    """The bind names in the order the caller's row tuples carry their values."""
    positions: tuple[int, ...] | None
    """Positional paramstyles (SQLite's qmark): for each placeholder in the SQL, the index of
    its value in the caller's row. None: a named paramstyle (psycopg's pyformat)."""
    processors: tuple[Processor, ...]


_CACHE: dict[tuple[Any, ...], _Compiled] = {}
_CACHE_LIMIT = 512  # kinds of statements are few (sets of columns); a bound all the same


def _compile(dialect: Dialect, key: tuple[Any, ...], build: Callable[[], Any], names: tuple[str, ...],
             types: Sequence[Any]) -> _Compiled:
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    compiled = build().compile(dialect=dialect)
    extra = sorted(set(compiled.bind_names.values()) - set(names))
    if extra:  # a column with a Python-side default the caller left out: give every column
        raise ValueError(f"{key[1]}: the rows must carry these columns too: {', '.join(extra)}")
    order = compiled.positiontup
    index = {n: i for i, n in enumerate(names)}
    positions = tuple(index[n] for n in order) if order is not None else None
    processors = tuple(t.dialect_impl(dialect).bind_processor(dialect) for t in types)
    out = _Compiled(str(compiled), names, positions, processors)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[key] = out
    return out


def _process(c: _Compiled, rows: Sequence[Sequence[Any]]) -> list[Any]:
    """The rows as the driver takes them: each value converted (once per distinct value)."""
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else []
    for i, proc in enumerate(c.processors):
        if proc is None:
            continue
        memo: dict[Any, Any] = {}
        converted: list[Any] = []
        for v in columns[i]:
            if v is None:
                converted.append(None)
                continue
            try:
                out = memo[v]
            except KeyError:
                out = memo[v] = proc(v)
            except TypeError:  # unhashable (a JSON document): converted each time
                out = proc(v)
            converted.append(out)
        columns[i] = converted
    if c.positions is not None:
        ordered = [columns[p] for p in c.positions]
        return list(zip(*ordered, strict=True))
    return [dict(zip(c.names, values, strict=True)) for values in zip(*columns, strict=True)]


def _run(s: Session, c: _Compiled, rows: Sequence[Sequence[Any]]) -> None:
    if rows:
        s.connection().exec_driver_sql(c.sql, _process(c, rows))


def update_many(s: Session, table: Table, columns: Sequence[str], where: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> None:
    """`UPDATE table SET columns… WHERE where… (=)` for each row: a tuple of the new values in
    `columns` order, then the `where` columns' values (e.g. `(id,)`, or `(id, status)` for a
    compare-and-set). One executemany."""
    dialect = s.get_bind().dialect
    key = ("update", table.name, tuple(columns), tuple(where), dialect.name, dialect.paramstyle)
    names = tuple(f"v_{c}" for c in columns) + tuple(f"w_{c}" for c in where)

    def build() -> Any:
        return table.update().where(and_(*(table.c[c] == bindparam(f"w_{c}") for c in where))).values(
            {c: bindparam(f"v_{c}") for c in columns})

    _run(s, _compile(dialect, key, build, names, [table.c[c].type for c in (*columns, *where)]), rows)


def insert_many(s: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """`INSERT INTO table (columns…)` each row (a tuple in `columns` order). One executemany."""
    dialect = s.get_bind().dialect
    key = ("insert", table.name, tuple(columns), dialect.name, dialect.paramstyle)
    names = tuple(f"v_{c}" for c in columns)

    def build() -> Any:
        return insert(table).values({c: bindparam(f"v_{c}") for c in columns})

    _run(s, _compile(dialect, key, build, names, [table.c[c].type for c in columns]), rows)
