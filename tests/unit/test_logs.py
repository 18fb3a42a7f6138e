"""JSON log lines: one object per line, ids lifted into fields, tracebacks inside the line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from common import logs

DEP, DEV = "3f1c2a9e-1b2c-4d5e-8f90-123456789abc", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    logs.configure("info", "json", out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_lines_with_ids_and_tracebacks(stream: io.StringIO) -> None:
    log = logging.getLogger("convoy.engine")
    log.info("reconcile of deployment %s: device %s failed", DEP, DEV)
    log.info("explicit", extra={"deployment_id": "given"})
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("writing reports failed")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["deployment_id"] == DEP and first["device_id"] == DEV and "job_id" not in first
    assert first["level"] == "INFO" and first["logger"] == "convoy.engine" and ":" in first["replica"]
    assert second["deployment_id"] == "given"
    assert "ValueError: boom" in third["exc_info"] and third["message"] == "writing reports failed"


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        logs.make_formatter("xml")
