"""How an enrollment record (seed 000's device_deployments) answers its device's report.

A record leaves `pending` once: by the report (`success`, or `error` with the log lines) or by
the enrollment timeout (`error`). An install that sends its report with `Enroll` itself
(`report_success`, docs/enrollment.md, "One call per install") has its record written `success`
at once, before it has stored the credential it is given; if storing it then fails, the device
reports `error`, and that one correction is accepted until the record's `open_until` (the
enrollment timeout after the enrollment). Nothing else moves a closed record: a duplicate of the
final status is answered with it, a contradiction is a Conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from common.errors import Conflict


@dataclass(frozen=True)
class Close:
    """Write `status` (the guarded update expects the record still at `was`)."""

    status: str
    was: str


@dataclass(frozen=True)
class Keep:
    """Nothing to write: the record already says `status` (a duplicate report)."""

    status: str


def on_report(record_id: str, status: str, open_until: datetime | None, success: bool,
              now: datetime) -> Close | Keep | Conflict:
    """The answer to a report of `success` (True) or `error` for a record now at `status`.
    `open_until`: the record's timeout_at (for a `success` written by Enroll, the end of the time
    in which its device may still correct it to `error`)."""
    want = "success" if success else "error"
    if status == "pending":
        return Close(want, "pending")
    if status == want:
        return Keep(want)
    if status == "success" and want == "error" and open_until is not None and now < open_until:
        return Close("error", "success")
    return Conflict(f"enrollment {record_id} is already {status}", deployment_id=record_id, status=status)
