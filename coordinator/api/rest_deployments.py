"""REST: /v2/deployments… exactly as seed 004 documents it."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
