"""AdminService: enrollment tokens, devices, and their enrollment history (seed 000)."""

from __future__ import annotations

from coordinator.api.base import Api


class DeviceRpcs(Api):
    pass
