"""Identifiers: UUIDs as canonical lowercase strings."""

from __future__ import annotations

import uuid

from common.errors import InvalidArgument


def new_id() -> str:
    return str(uuid.uuid4())


def parse_uuid(value: str, name: str) -> str:
    """The canonical form of `value`, or a 400 that names the parameter."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(f"{name} must be a UUID", parameter=name, value=str(value)) from None
