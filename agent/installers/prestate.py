"""What was on the device before a deployment changed it: the record a rollback restores from.

    <state>/prestate/<deployment_id>.json     one record per deployment that ran here
    <state>/prestate/<deployment_id>.d/       copies of what the deployment replaced (files,
                                              portable package directories), when there were any

An installer writes the record *before* it changes anything, keyed by the deployment's id (the
original deployment: a rollback job names it in `revertsDeploymentId`). Retries of the same
deployment merge into it and never overwrite what an earlier attempt saw first: attempt 2 runs
on a device attempt 1 may have half changed, so only attempt 1 saw the state before. When the
forward job ends, the installer adds what it left (`after`), so a rollback can tell whether
something else changed the device since (then it refuses to touch it). Written atomically, 0600,
as the journal is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.installers.base import InstallError
from agent.state import StateDir, atomic_write
from common.clock import utcnow

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

Versions = Mapping[str, "str | None"]
"""Per package (or policy, or file): the version before/after; None means not installed."""


@dataclass(frozen=True)
class PreState:
    """One deployment's record on this device."""

    deployment_id: str
    kind: str
    """What changed: `patch`, `deb`, `tar.gz`, `file` or `policy`."""
    job_id: str
    """The job that first recorded it (the first attempt that reached the installer)."""
    recorded_at: str
    before: Mapping[str, str | None]
    """What was there before, per name; None = not installed. First seen wins."""
    after: Mapping[str, str | None] = field(default_factory=dict)
    """What the latest attempt left, per name; empty until an attempt ended."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Kind-specific (the installer's own dataclass, read with `details_as`): the .deb's
    package name, the replaced entry of installed.json, where copies were saved."""
    restored_at: str = ""
    """Set when a rollback job restored the state before."""

    def merged(self, before: Versions) -> PreState:
        """Add names a later step (or attempt) found; what was recorded first stays."""
        return replace(self, before={**before, **self.before})

    def ended(self, after: Versions) -> PreState:
        return replace(self, after=dict(after), restored_at="")

    def with_details(self, **changes: Any) -> PreState:
        return replace(self, details={**self.details, **changes})

    def details_as(self, cls: type[D]) -> D:
        """The kind-specific details as the installer's dataclass `cls`, or InstallError."""
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in self.details.items() if k in names})
        except TypeError as exc:
            raise InstallError(f"the pre-state record of deployment {self.deployment_id} is incomplete "
                               f"({exc}); nothing changed") from exc

    def restored(self) -> PreState:
        return replace(self, restored_at=utcnow().isoformat())

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PreState:
        raw = json.loads(data)
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class PreStateStore:
    """The prestate directory of one agent state dir."""

    def __init__(self, state: StateDir) -> None:
        self.dir = state.root / "prestate"

    def _check(self, deployment_id: str) -> str:
        if not _SAFE_ID.match(deployment_id):
            raise InstallError(f"deployment id {deployment_id!r} cannot name a pre-state record")
        return deployment_id

    def path(self, deployment_id: str) -> Path:
        return self.dir / f"{self._check(deployment_id)}.json"

    def copies(self, deployment_id: str) -> Path:
        """Where copies of what the deployment replaced are kept."""
        return self.dir / f"{self._check(deployment_id)}.d"

    def load(self, deployment_id: str) -> PreState | None:
        path = self.path(deployment_id)
        if not path.exists():
            return None
        try:
            return PreState.from_json(path.read_bytes())
        except (ValueError, TypeError) as exc:
            raise InstallError(f"the pre-state record {path.name} is unreadable ({exc}); nothing changed") from exc

    def save(self, record: PreState) -> PreState:
        atomic_write(self.path(record.deployment_id), record.to_json(), mode=0o600)
        return record

    def record_before(self, deployment_id: str, kind: str, job_id: str, before: Versions,
                      details: DataclassInstance | None = None) -> tuple[PreState, bool]:
        """Durably note what is there now, before the caller changes it. Returns the record
        and whether it is new (False: an earlier attempt recorded first, and its view stays)."""
        existing = self.load(deployment_id)
        if existing is not None:
            return self.save(existing.merged(before)), False
        record = PreState(deployment_id=deployment_id, kind=kind, job_id=job_id,
                          recorded_at=utcnow().isoformat(), before=dict(before), details=asdict(details) if details is not None else {})
        return self.save(record), True

    def require(self, deployment_id: str, kind: str) -> PreState:
        """The record a rollback needs; InstallError (nothing changed) when there is none."""
        record = self.load(deployment_id)
        if record is None:
            raise InstallError(f"no record of what was on this device before deployment {deployment_id} "
                               "(it did not run here, or ran under an agent that kept none); nothing changed")
        if record.kind != kind:
            raise InstallError(f"the pre-state record of deployment {deployment_id} is for {record.kind}, "
                               f"not {kind}; nothing changed")
        return record


def reverted_deployment(payload: Mapping[str, Any]) -> str:
    """The deployment a rollback job reverts (`revertsDeploymentId`), or InstallError."""
    value = payload.get("revertsDeploymentId")
    if not isinstance(value, str) or not value:
        raise InstallError("the rollback job does not name the deployment it reverts (revertsDeploymentId: "
                           "the coordinator is older than this agent); nothing changed")
    return value
