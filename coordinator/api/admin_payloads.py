"""AdminService: groups, scripts and artifacts."""

from __future__ import annotations

from coordinator.api.base import Api


class PayloadRpcs(Api):
    pass
