"""The agent's state directory.

    <state-dir>/
      agent.json          servers (the coordinator addresses, in order; `server` is the first, and
                          the only one an older agent.json holds), device_id, client_id,
                          machine_id, tags, site, agent_version, insecure
      credential          the device credential, mode 0600 (the coordinator keeps only its hash)
      ca.pem              the coordinator's CA, pinned at install; every connection must verify
                          against it (absent only for an `--insecure` install)
      device.key          the device's private key (ECDSA P-256), mode 0600; never sent anywhere
      device.pem          the device certificate the coordinator signed for it: every agent call
                          presents it (mutual TLS on the agent port). Both absent: bearer-only
      windows.conf        local maintenance windows, one per line (see docs/maintenance-windows.md)
      journal/            one JSON file per job (see agent/journal.py)
      policy/             the local policy store (see agent/installers/policy.py)
      work/               downloads and extracted archives
      packages/           portable packages installed by the software installer, and their record

Files are written atomically (write to a temp file, fsync, rename), so a crash never leaves a
half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.transport import ClientTLS

AGENT_VERSION = "0.1.0"
DEFAULT_STATE_DIR = "/var/lib/convoy-agent"


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass
class AgentIdentity:
    server: str
    """The first coordinator address (the only one an agent.json written before `servers` has)."""
    device_id: str
    client_id: str
    machine_id: str
    agent_version: str = AGENT_VERSION
    tags: list[str] = field(default_factory=list)
    site: str = ""
    insecure: bool = False
    """Installed with `--insecure` (plaintext to a loopback coordinator): no CA is pinned."""
    servers: list[str] = field(default_factory=list)
    """Every coordinator address (replicas), tried in turn; the pinned CA applies to each."""
    cert_not_before: str = ""
    """RFC 3339 start of `device.pem`'s validity ("" without one): with `cert_not_after`, when
    `agent run` renews it (read here, so the daemon need not parse certificates)."""
    cert_not_after: str = ""
    """RFC 3339 end of `device.pem`'s validity ("" without one)."""

    @property
    def addresses(self) -> list[str]:
        """The addresses to try: `servers`, or the single `server` of an older agent.json."""
        return list(self.servers) if self.servers else [self.server]


class StateDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    @property
    def identity_path(self) -> Path:
        return self.root / "agent.json"

    @property
    def credential_path(self) -> Path:
        return self.root / "credential"

    @property
    def ca_path(self) -> Path:
        return self.root / "ca.pem"

    @property
    def device_key_path(self) -> Path:
        return self.root / "device.key"

    @property
    def device_cert_path(self) -> Path:
        return self.root / "device.pem"

    @property
    def windows_path(self) -> Path:
        return self.root / "windows.conf"

    @property
    def journal_dir(self) -> Path:
        return self.root / "journal"

    @property
    def policy_dir(self) -> Path:
        return self.root / "policy"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def packages_dir(self) -> Path:
        return self.root / "packages"

    def is_enrolled(self) -> bool:
        return self.identity_path.exists() and self.credential_path.exists()

    def save(self, identity: AgentIdentity, credential: str, ca_pem: bytes | None = None,
             device_key: bytes | None = None, device_cert: bytes | None = None) -> None:
        """Write the enrollment. With no `device_cert` any previous key and certificate are
        removed (the device is bearer-only now: the coordinator forgot its key)."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        if ca_pem is not None:
            atomic_write(self.ca_path, ca_pem, mode=0o644)
        if device_key is not None and device_cert is not None:
            atomic_write(self.device_key_path, device_key, mode=0o600)
            atomic_write(self.device_cert_path, device_cert, mode=0o644)
        else:
            for path in (self.device_cert_path, self.device_key_path):
                path.unlink(missing_ok=True)
        atomic_write(self.credential_path, credential.encode(), mode=0o600)
        atomic_write(self.identity_path, json.dumps(asdict(identity), indent=2).encode(), mode=0o600)

    def save_certificate(self, identity: AgentIdentity, device_cert: bytes) -> None:
        """A renewed device certificate for the key already here, and agent.json with its validity."""
        atomic_write(self.device_cert_path, device_cert, mode=0o644)
        atomic_write(self.identity_path, json.dumps(asdict(identity), indent=2).encode(), mode=0o600)

    def load(self) -> tuple[AgentIdentity, str]:
        if not self.is_enrolled():
            raise FileNotFoundError(f"{self.root} holds no enrollment: run `convoy agent install` first")
        data: dict[str, Any] = json.loads(self.identity_path.read_text())
        known = set(AgentIdentity.__dataclass_fields__)
        identity = AgentIdentity(**{k: v for k, v in data.items() if k in known})
        return identity, self.credential_path.read_text().strip()

    def client_tls(self, identity: AgentIdentity) -> ClientTLS:
        """How the daemon trusts its coordinator: the pinned CA, or plaintext if installed so.
        A state dir that is neither (its CA file was removed) is an error, never plaintext."""
        from common import transport

        if identity.insecure:
            return transport.PLAINTEXT
        if not self.ca_path.exists():
            raise FileNotFoundError(f"{self.ca_path} is missing: the coordinator's CA is not pinned; "
                                    "reinstall with `convoy agent install --ca-fingerprint sha256:…`")
        ca = self.ca_path.read_bytes()
        if self.device_cert_path.exists():
            return transport.ClientTLS(ca_pem=ca, client_key_pem=self.device_key_path.read_bytes(),
                                       client_cert_pem=self.device_cert_path.read_bytes())
        return transport.ClientTLS(ca_pem=ca)

    def maintenance_windows(self) -> list[str]:
        """Local windows: non-empty, non-comment lines of windows.conf."""
        if not self.windows_path.exists():
            return []
        lines = (ln.strip() for ln in self.windows_path.read_text().splitlines())
        return [ln for ln in lines if ln and not ln.startswith("#")]
