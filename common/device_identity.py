"""Device identity shared by the agent and the coordinator (docs/security.md, "Device
certificates"). Pure: no I/O, and no `cryptography` (the agent loads it only at install).

- Agent calls after enrollment go to the **agent port**, the coordinator's gRPC port + 1, which
  requires a client certificate signed by the coordinator's CA (mutual TLS). gRPC's Python server
  can only ask for client certificates on a port as "never" or "required", so Enroll and the
  operators' clients keep the gRPC port (no client certificate) and agents use the next one.
- A reinstall of a device that holds a key proves it by signing `proof_message` with that key.
"""

from __future__ import annotations

import json

AGENT_PORT_OFFSET = 1
PROOF_CONTEXT = b"convoy-enroll-proof-v1\n"
PROOF_WINDOW_S = 300
"""A key proof is accepted when its time is within this many seconds of the coordinator's clock."""


def agent_address(address: str) -> str:
    """`host:port` (or `[v6]:port`) of the gRPC listener → the same host on the agent port."""
    host, _, port = address.rpartition(":")
    return f"{host}:{int(port) + AGENT_PORT_OFFSET}"


def proof_message(machine_id: str, csr_der: bytes, proof_time: int) -> bytes:
    """What the old device key signs to re-enroll: the machine, the new request, and when."""
    import hashlib  # OpenSSL's libcrypto (~4 MB of RSS): only at install, never in the idle agent

    body = {"csrSha256": hashlib.sha256(csr_der).hexdigest(), "machineId": machine_id, "time": int(proof_time)}
    return PROOF_CONTEXT + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
