"""Who may enroll: the rules of `Enroll` for a batch of calls, decided on a snapshot, in order.

The store layer (coordinator/service/enrollment_batch.py) reads the tokens and devices a batch
names, locked, and writes what `decide` admits with set-based statements. Deciding in call order
on one snapshot gives each call the answer it would get alone, one after the other: the second
of two calls for a token's last use finds it used up, a device created by an earlier call of the
batch cannot be claimed by a later one, and a credential rotated by an earlier call no longer
proves anything.

Rules (docs/enrollment.md): the token must be known, not revoked, not expired and not used up;
the machine id must be 1-200 characters, none of them a control character; a machine id that is already a device in the client is
handed that device only with proof (its current credential), or to the replacement token issued
for exactly that device (which also reinstates a revoked device); a revoked device is refused any
other way; anything else is refused and takes no use of the token.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from common.errors import Conflict, ConvoyError, InvalidArgument, PermissionDenied, Unauthenticated
from common.timefmt import iso
from coordinator.domain import device_input as di

MACHINE_ID_MAX = 200


@dataclass(frozen=True)
class TokenRow:
    """An enrollment token as the store holds it."""

    id: str
    client_id: str
    token_hash: str
    revoked: bool
    expires_at: datetime | None
    max_uses: int | None
    uses: int
    group_ids: tuple[str, ...]
    created_by: str | None
    device_id: str | None
    """A replacement token re-enrolls exactly this device."""


@dataclass(frozen=True)
class DeviceRow:
    """An enrolled device, as far as claiming it goes."""

    id: str
    client_id: str
    machine_id: str
    credential_hash: str
    """"" once an earlier call of the batch rotated it: nothing proves it any more."""
    created_here: bool = False
    """Created by an earlier call of this batch."""
    revoked: bool = False
    """Revoked by an operator: only a replacement token issued for it enrolls it again."""
    public_key: str | None = None
    """The device key it enrolled with (docs/security.md, "Device certificates"); None:
    bearer-only, proven by its credential."""


@dataclass(frozen=True)
class Ask:
    """One Enroll call."""

    token_hash: str
    """SHA-256 of the token sent; "" when none was sent."""
    machine_id: str
    proof_hash: str = ""
    """SHA-256 of the device credential the call carries (a reinstall); "" for none."""
    source: str = ""
    """Where the call came from, for the log."""
    key_refusal: str | None = None
    """For a machine id whose device holds a key: "" when the call proves that key, otherwise why
    not (checked by the store layer, which has the cryptography); None when it does not apply."""


@dataclass(frozen=True)
class Admit:
    token: TokenRow
    device_id: str | None
    """The existing device re-identified; None: a new device."""
    machine_id: str
    """The device's machine id from now on (a replacement may bring a new one)."""


@dataclass(frozen=True)
class Refuse:
    error: ConvoyError
    warning: str = ""
    """What to log besides the caller's own failure line (a refused takeover)."""


@dataclass
class _State:
    taken: dict[str, int] = field(default_factory=dict)
    by_key: dict[tuple[str, str], DeviceRow] = field(default_factory=dict)
    by_id: dict[str, DeviceRow] = field(default_factory=dict)

    def put(self, d: DeviceRow, old_key: tuple[str, str] | None = None) -> None:
        if old_key is not None and self.by_key.get(old_key) is not None and self.by_key[old_key].id == d.id:
            del self.by_key[old_key]
        self.by_key[(d.client_id, d.machine_id)] = d
        if d.id:
            self.by_id[d.id] = d


def decide(asks: Sequence[Ask], tokens: Mapping[str, TokenRow], devices: Sequence[DeviceRow],
           now: datetime) -> list[Admit | Refuse]:
    """The answer to each call, in order. `tokens` by hash; `devices`: every device a call names
    (by client and machine id, or as a replacement token's target)."""
    state = _State()
    for d in devices:
        state.put(d)
    out: list[Admit | Refuse] = []
    for ask in asks:
        row = tokens.get(ask.token_hash) if ask.token_hash else None
        try:
            out.append(_one(state, ask, row, now))
        except ConvoyError as exc:
            out.append(Refuse(exc))
    return out


def _usable(row: TokenRow | None, ask: Ask, taken: int, now: datetime) -> TokenRow:
    """The token, or Unauthenticated saying exactly what is wrong with it."""
    if not ask.token_hash:
        raise Unauthenticated("enrollment token required")
    # The lookup is by an index on the hash; the final comparison is constant time anyway.
    if row is None or not hmac.compare_digest(ask.token_hash, row.token_hash):
        raise Unauthenticated("invalid enrollment token")
    if row.revoked:
        raise Unauthenticated("enrollment token has been revoked", token_id=row.id)
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated(f"enrollment token expired at {iso(row.expires_at)}", token_id=row.id)
    if row.max_uses is not None and row.uses + taken >= row.max_uses:
        raise Unauthenticated(f"enrollment token has been used up ({row.max_uses} of {row.max_uses} uses)",
                              token_id=row.id)
    return row


def _one(state: _State, ask: Ask, row: TokenRow | None, now: datetime) -> Admit | Refuse:
    token = _usable(row, ask, state.taken.get(row.id, 0) if row else 0, now)
    machine_id = ask.machine_id
    if not machine_id:
        raise InvalidArgument("machine_id must not be empty", parameter="machine_id")
    if len(machine_id) > MACHINE_ID_MAX:
        raise InvalidArgument(f"machine_id must be at most {MACHINE_ID_MAX} characters", parameter="machine_id")
    if di.line(machine_id, MACHINE_ID_MAX) != machine_id:
        # A NUL cannot be stored in PostgreSQL text; no real machine id holds a control character.
        raise InvalidArgument("machine_id must not contain control characters", parameter="machine_id")
    existing = state.by_key.get((token.client_id, machine_id))
    if token.device_id is not None:
        target = state.by_id.get(token.device_id)
        if target is None or target.client_id != token.client_id:
            raise Unauthenticated("the device this replacement token was issued for no longer exists",
                                  token_id=token.id)
        if existing is not None and existing.id != target.id:
            raise Conflict(f"machine id {machine_id!r} is already enrolled as another device {existing.id}; "
                           f"this replacement token is for device {target.id}",
                           device_id=existing.id, machine_id=machine_id)
        admit = Admit(token, target.id, machine_id)
        state.put(replace(target, machine_id=machine_id, credential_hash=""),
                  old_key=(target.client_id, target.machine_id))
    elif existing is None:
        admit = Admit(token, None, machine_id)
        state.put(DeviceRow(id="", client_id=token.client_id, machine_id=machine_id, credential_hash="",
                            created_here=True))
    elif existing.revoked:
        return Refuse(PermissionDenied(
            f"device {existing.id} (machine id {machine_id!r}) was revoked; only an operator's "
            f"`convoy devices replace {existing.id}` token can enroll it again",
            device_id=existing.id, machine_id=machine_id),
            f"enrollment refused: machine id {machine_id!r} is revoked device {existing.id} of client "
            f"{token.client_id}; token {token.id}, from {ask.source or 'unknown'}")
    else:
        refusal = _check_proof(token, machine_id, existing, ask)
        if refusal is not None:
            return refusal  # takes no use of the token
        admit = Admit(token, existing.id, machine_id)
        state.put(replace(existing, credential_hash=""))
    state.taken[token.id] = state.taken.get(token.id, 0) + 1
    return admit


def _check_proof(token: TokenRow, machine_id: str, existing: DeviceRow, ask: Ask) -> Refuse | None:
    if existing.created_here:
        # Two installs of one machine at the same moment: the first one's device is not the
        # second's to take (it proved nothing about it).
        return Refuse(Conflict(f"machine id {machine_id!r} was enrolled by another install at the same moment; "
                               "retry from that device's state dir", machine_id=machine_id))
    if existing.public_key is not None:
        # A device with a key proves that key; its credential alone is what a thief would have.
        if not existing.credential_hash:
            why = "its key was replaced by an earlier install in the same moment"
        elif ask.key_refusal is None:
            why = "it holds a device key and the request carries no proof by that key"
        elif ask.key_refusal:
            why = ask.key_refusal
        else:
            return None
    elif not ask.proof_hash:
        why = "no device credential sent"
    elif not existing.credential_hash or not hmac.compare_digest(ask.proof_hash, existing.credential_hash):
        why = "wrong device credential"
    else:
        return None
    error = PermissionDenied(
        f"machine id {machine_id!r} is already enrolled as device {existing.id} and this request does not prove "
        f"it is that device ({why}): reinstall from the device's own state dir (its device key, or for a "
        f"bearer-only device its credential, is the proof), or have an operator run `convoy devices replace "
        f"{existing.id}` and install with that token",
        device_id=existing.id, machine_id=machine_id)
    return Refuse(error, f"enrollment refused: machine id {machine_id!r} is already device {existing.id} of client "
                         f"{token.client_id} and the request does not prove it is that device ({why}); "
                         f"token {token.id}, from {ask.source or 'unknown'}")
