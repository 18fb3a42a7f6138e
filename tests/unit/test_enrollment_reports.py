"""The rule of an enrollment record's reports (coordinator/domain/enrollment_reports.py): pending
closes once; a success sent with Enroll may be corrected to error by its device until open_until;
nothing else moves a closed record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.errors import Conflict
from coordinator.domain.enrollment_reports import Close, Keep, on_report

T0 = datetime(2026, 1, 29, 9, 0, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=600)


@pytest.mark.parametrize("success,status", [(True, "success"), (False, "error")])
def test_a_pending_record_closes_with_the_report(success: bool, status: str) -> None:
    assert on_report("r", "pending", LATER, success, T0) == Close(status, "pending")


@pytest.mark.parametrize("status", ["success", "error"])
def test_a_duplicate_is_answered_without_a_write(status: str) -> None:
    assert on_report("r", status, None, status == "success", T0) == Keep(status)
    assert on_report("r", status, LATER, status == "success", T0) == Keep(status)


def test_a_success_sent_with_enroll_is_corrected_to_error_until_open_until() -> None:
    assert on_report("r", "success", LATER, False, T0) == Close("error", "success")
    assert on_report("r", "success", LATER, False, LATER - timedelta(microseconds=1)) == Close("error", "success")
    late = on_report("r", "success", LATER, False, LATER)
    assert isinstance(late, Conflict) and late.details == {"deployment_id": "r", "status": "success"}


def test_a_success_closed_by_a_report_or_an_error_never_moves() -> None:
    assert isinstance(on_report("r", "success", None, False, T0), Conflict)  # closed by ReportEnrollment
    assert isinstance(on_report("r", "error", None, True, T0), Conflict)  # timed out, or reported error
    assert isinstance(on_report("r", "error", LATER, True, T0), Conflict)
