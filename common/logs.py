"""Process logging for `convoy coordinator serve` and `convoy agent run`: one handler on stderr,
text for people or JSON lines for collectors, and libraries kept quiet.

JSON: one object per line with `time`, `level`, `logger`, `message`, `replica` (which replica of
a coordinator spoke: its `--replica-id`; host:pid for a process that has none, such as the
agent) and whatever `extra=` fields the call passed (`deployment_id`, `device_id` …); a
traceback travels in `exc_info` inside the same line. Text: one line per event (a traceback
follows on its own lines, as Python prints it); a coordinator's lines carry `[replica-id]` after
the level.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
from typing import TextIO

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REPLICA_TEXT_FORMAT = "%(asctime)s %(levelname)s [{replica}] %(name)s: %(message)s"

# Libraries whose INFO lines are noise to an operator (Alembic prints a line per migration
# context on every start; uvicorn announces itself; gRPC and httpx narrate connections).
QUIET_LOGGERS = ("alembic", "uvicorn", "uvicorn.error", "uvicorn.access", "grpc", "grpc._cython",
                 "httpx", "httpcore", "sqlalchemy", "asyncio")


def replica_id() -> str:
    """The `replica` of a process given none (host:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_IDS = {key: re.compile(rf"\b{word} ({_UUID})\b")
        for key, word in (("deployment_id", "deployment"), ("device_id", "device"), ("job_id", "job"))}


class IdFields(logging.Filter):
    """Lift `deployment <uuid>`, `device <uuid>`, `job <uuid>` out of a message into fields of
    their own (unless the call passed them with `extra=`), so a collector can select on them
    without every log call in the code base being rewritten."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is still logged, just without ids
            return True
        for key, pattern in _IDS.items():
            if not hasattr(record, key):
                found = pattern.search(message)
                if found:
                    setattr(record, key, found.group(1))
        return True


def make_formatter(fmt: str, replica: str | None = None) -> logging.Formatter:
    """`replica`: the coordinator's replica id, on every line (text and JSON)."""
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                             rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                             static_fields={"replica": replica or replica_id()}, json_ensure_ascii=False)
    if fmt == "text":
        if replica:
            return logging.Formatter(REPLICA_TEXT_FORMAT.format(replica=replica.replace("%", "%%")))
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {fmt!r}: use one of {', '.join(FORMATS)}")


def configure(level: str = "info", fmt: str = "text", stream: TextIO | None = None,
              replica: str | None = None) -> None:
    """Replace the root logger's handlers with one on `stream` (default stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(fmt, replica))
    if fmt == "json":
        handler.addFilter(IdFields())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    quiet = max(logging.WARNING, root.level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
