"""AdminService: deployments (seed 004)."""

from __future__ import annotations

from coordinator.api.base import Api


class DeploymentRpcs(Api):
    pass
