"""REST: devices and their enrollment history, /v2/clients/{client_id}/devices/…"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
