"""AgentService: Enroll and ReportEnrollment."""

from __future__ import annotations

from coordinator.api.base import Api


class EnrollmentRpcs(Api):
    pass
