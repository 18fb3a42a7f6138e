"""Secret script parameters on the coordinator (docs/payloads.md, "Secret parameters").

Write-only: a value arrives in a deployment's `payload.parameters`, is sealed at once (encrypted
with the data dir's key, beside its commitment; store/sealing.py) and is never shown again: the
API shows `"***"`, manifests show the commitment. The agent receives the value inside its job
only (`reveal`, called by the hub as the job is sent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from common import secret_params
from common.errors import InvalidArgument, Unavailable
from coordinator.store import sealing

MASK = "***"
"""What the API shows for a secret value; given back on update, it keeps the stored value."""


def _sealer(s: Session) -> sealing.Sealer:
    sealer = s.info.get("sealer")
    if sealer is None:  # a store opened without a data dir's key (never the served coordinator)
        raise Unavailable("this coordinator has no secrets key to seal secret parameters with")
    return sealer  # type: ignore[no-any-return]


def secret_names(schema: Mapping[str, Any]) -> set[str]:
    return {name for name, spec in (schema.get("properties") or {}).items() if spec.get("secret") is True}


def seal(s: Session, schema: Mapping[str, Any], params: Mapping[str, Any],
         current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`params` with every secret value sealed. `"***"` (or the stored value itself, as a partial
    update carries it) keeps the stored value of `current`; a value that only looks sealed is a 400."""
    names = secret_names(schema)
    if not names:
        return dict(params)
    out = dict(params)
    for name in names & set(params):
        value, field = params[name], f"payload.parameters.{name}"
        kept = (current or {}).get(name)
        if value == MASK or sealing.is_sealed(value):
            if not sealing.is_sealed(kept) or (value != MASK and value != kept):
                raise InvalidArgument(f"{field} is secret: give its value (\"***\" keeps a value already stored)",
                                      parameter=field)
            out[name] = kept
        else:
            out[name] = _sealer(s).seal(str(value))
    return out


def mask(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as the API shows it: every sealed value as `"***"`."""
    params = payload.get("parameters")
    if not isinstance(params, Mapping) or not any(sealing.is_sealed(v) for v in params.values()):
        return dict(payload)
    return {**payload, "parameters": {k: MASK if sealing.is_sealed(v) else v for k, v in params.items()}}


def job_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters frozen into a job payload: a secret as `{"$secret": commitment, "sealed": token}`."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if sealing.is_sealed(v):
            commitment, token = sealing.split(v)
            out[k] = {secret_params.MARK: commitment, "sealed": token}
        else:
            out[k] = v
    return out


def reveal(store_info: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """The job payload as its agent receives it: each secret's value decrypted beside its commitment."""
    params = payload.get("parameters")
    if not isinstance(params, Mapping) or not any(secret_params.is_secret(v) for v in params.values()):
        return dict(payload)
    sealer = store_info.get("sealer")
    if sealer is None:
        raise sealing.SealError("this coordinator has no secrets key")
    return {**payload, "parameters": {
        k: {secret_params.MARK: v[secret_params.MARK], "value": sealer.open(str(v.get("sealed", "")))}
        if secret_params.is_secret(v) else v for k, v in params.items()}}
