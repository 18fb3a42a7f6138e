"""Coordinator settings: one frozen dataclass, a docstring per field."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


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
    insecure: bool = False
    """Serve plaintext gRPC and REST. Refused unless both listen addresses are loopback."""
    tls_cert: str | None = None
    """The operator's certificate chain (PEM, leaf first); None = the coordinator-made one."""
    tls_key: str | None = None
    """The private key (PEM) of `tls_cert`."""
    tls_sans: tuple[str, ...] = field(default_factory=tuple)
    """Names and addresses the coordinator-made certificate covers; empty = this host's own."""
    max_body_bytes: int = 1024 * 1024
    """REST request bodies larger than this are refused with 413 before they are read."""
    max_connections: int = 1000
    """REST connections held at once; more are closed at accept."""
    enroll_failure_limit: int = 20
    """Failed Enroll calls allowed per source address per minute; more are refused (429)."""
    enroll_batch_max: int = 500
    """Concurrent Enroll (and ReportEnrollment) calls written in one transaction, at most; 1 =
    one transaction per call."""
    enroll_batch_linger_s: float = 0.002
    """How long a batch of Enroll (and ReportEnrollment) calls waits for more before it is
    written (0 = at once): fewer, larger transactions in an install wave."""
    header_timeout_s: float = 10.0
    """A REST connection that sends no complete request head within this is closed."""
    replica_id: str = ""
    """This coordinator among replicas on one store (`--replica-id`); empty = generated at start."""
    webhooks_allow_link_local: bool = False
    """Deliver webhooks to link-local and cloud metadata addresses too (refused by default: SSRF)."""
    connect_admission_limit: int = 1000
    """Agent streams being set up at once (authenticated, welcomed, their hello not yet written):
    one more is refused with RESOURCE_EXHAUSTED and a retry hint the agent honours quietly
    (a reconnect storm is admitted at the pace the coordinator can take, api/agent_stream.py)."""
    device_cert_lifetime_s: float = 365 * 86400.0
    """How long a device certificate is valid; agents renew theirs in the last third of it."""
    require_device_certs: bool = False
    """Refuse bearer-only devices (enrolled without a key: older agents, simulators): every agent
    call must present its device certificate, and Enroll must carry a key (docs/security.md)."""


REPLICA_ID_MAX = 48
"""`engine@<replica id>` must fit the 64 characters of an audit event's actor."""
_REPLICA_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def generated_replica_id() -> str:
    """`<hostname>-<6 hex>`: readable, and distinct for two replicas on one host."""
    import secrets
    import socket

    host = "".join(c if c in _REPLICA_CHARS else "-" for c in socket.gethostname().split(".")[0]) or "coordinator"
    return f"{host[:REPLICA_ID_MAX - 7]}-{secrets.token_hex(3)}"


def check_replica_id(value: str) -> str | None:
    """Why `value` is not a usable replica id, or None."""
    if not value:
        return "must not be empty"
    if len(value) > REPLICA_ID_MAX:
        return f"must be at most {REPLICA_ID_MAX} characters (it is {len(value)})"
    bad = sorted(set(value) - _REPLICA_CHARS)
    if bad:
        return f"may contain only letters, digits, '.', '_' and '-' (not {''.join(bad)!r})"
    return None


def is_loopback(listen: str) -> bool:
    """True for `127.x.x.x:P`, `[::1]:P` and `localhost:P`; an empty host means every interface."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_insecure(settings: Settings) -> str | None:
    """Why `settings` may not run plaintext, or None when it may (or does not ask to)."""
    if not settings.insecure:
        return None
    for flag, listen in (("--grpc-listen", settings.grpc_listen), ("--http-listen", settings.http_listen)):
        if listen and not is_loopback(listen):
            return (f"--insecure is refused on {flag} {listen}: plaintext would expose API tokens and device "
                    "credentials on the network; listen on 127.0.0.1 or drop --insecure")
    if settings.tls_cert or settings.tls_key:
        return "--insecure cannot be combined with --tls-cert/--tls-key"
    if settings.require_device_certs:
        return "--insecure cannot be combined with --require-device-certs: plaintext has no device certificates"
    return None
