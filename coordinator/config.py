"""Coordinator settings: one frozen dataclass, a docstring per field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    db: str | None = None
    """SQLAlchemy URL; None means SQLite in `data_dir`."""
    data_dir: str = "./convoy-data"
    """Where the SQLite database (and nothing else secret) lives."""
    grpc_listen: str = "127.0.0.1:7443"
    """gRPC address for agents and the CLI; port 0 picks a free port."""
    http_listen: str = "127.0.0.1:7080"
    """REST address (`/v2/...`, `/openapi.json`); empty string disables REST."""
    enrollment_timeout_s: float = 600.0
    """A pending enrollment record that never reports becomes `error` after this long."""
    heartbeat_interval_s: float = 15.0
    """How often agents send heartbeats."""
    offline_after_missed: int = 3
    """A device is offline after this many missed heartbeats (or when its stream ends)."""
    default_install_timeout_minutes: float = 30.0
    """A dispatched device that never reports is failed after this (per deployment override)."""
    report_flush_interval_s: float = 0.05
    """How often queued agent reports are written, all in one transaction."""
