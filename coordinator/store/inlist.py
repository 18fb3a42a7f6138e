"""IN lists of ids, as cheap for the store as the backend allows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Connection, any_, bindparam
from sqlalchemy.orm import Session


def chunks(ids: Any, size: int = 5000) -> Iterator[list[Any]]:
    """IN lists in pieces (PostgreSQL takes at most 65,535 parameters in one statement)."""
    items = list(ids)
    for i in range(0, len(items), size):
        yield items[i:i + size]


def id_in(s: Session | Connection, column: Any, ids: Any, size: int = 5000) -> Iterator[ColumnElement[bool]]:
    """`column IN ids` as few statements' WHERE clauses as the backend allows.

    PostgreSQL: one clause, `column = ANY(:array)`, whatever the number of ids: a single array
    parameter instead of one bound parameter per id, which SQLAlchemy renders and psycopg sends
    one by one (measured: 20,000 ids read 3-4x faster). SQLite: IN lists in pieces (`chunks`)."""
    items = list(ids)
    if not items:
        return
    dialect = s.dialect if isinstance(s, Connection) else s.get_bind().dialect
    if dialect.name == "postgresql":
        yield column == any_(bindparam(None, items, type_=ARRAY(column.type)))
        return
    for part in chunks(items, size):
        yield column.in_(part)
