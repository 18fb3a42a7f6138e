"""The rules of Enroll for a batch of calls, decided in order on one snapshot (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.errors import Conflict, InvalidArgument, PermissionDenied, Unauthenticated
from common.secrets import hash_secret
from coordinator.domain.enrollment_claims import Admit, Ask, DeviceRow, Refuse, TokenRow, decide

T0 = datetime(2026, 1, 29, 9, 0, 0, tzinfo=UTC)
CLIENT = "c1"


def token(name: str = "tok", **kw: object) -> TokenRow:
    args: dict[str, object] = {"id": f"id-{name}", "client_id": CLIENT, "token_hash": hash_secret(name),
                               "revoked": False, "expires_at": None, "max_uses": None, "uses": 0, "group_ids": (),
                               "created_by": "api-1", "device_id": None, **kw}
    return TokenRow(**args)  # type: ignore[arg-type]


def ask(machine: str, tok: str = "tok", proof: str = "") -> Ask:
    return Ask(token_hash=hash_secret(tok), machine_id=machine, proof_hash=hash_secret(proof) if proof else "",
               source="ipv4:10.0.0.9:5000")


def errors(out: list[Admit | Refuse]) -> list[str]:
    return ["ok" if isinstance(o, Admit) else type(o.error).__name__ for o in out]


def test_last_uses_go_to_the_first_calls_in_order() -> None:
    t = token(max_uses=3, uses=1)
    out = decide([ask(f"m{i}") for i in range(4)], {t.token_hash: t}, [], T0)
    assert errors(out) == ["ok", "ok", "Unauthenticated", "Unauthenticated"]
    assert isinstance(out[2], Refuse) and "used up (3 of 3 uses)" in out[2].error.message


@pytest.mark.parametrize(("row", "now", "message"), [
    (token(revoked=True), T0, "revoked"),
    (token(expires_at=T0), T0, "expired at"),
    (token(max_uses=1, uses=1), T0, "used up"),
])
def test_unusable_token_is_refused_with_the_reason(row: TokenRow, now: datetime, message: str) -> None:
    out = decide([ask("m")], {row.token_hash: row}, [], now)
    assert isinstance(out[0], Refuse) and isinstance(out[0].error, Unauthenticated)
    assert message in out[0].error.message


def test_unknown_or_missing_token_and_bad_machine_ids() -> None:
    t = token()
    asks = [ask("m", tok="other"), Ask(token_hash="", machine_id="m"), ask(""), ask("x" * 201), ask("a\x00b"),
            ask("fine")]
    out = decide(asks, {t.token_hash: t}, [], T0)
    assert errors(out) == ["Unauthenticated", "Unauthenticated", "InvalidArgument", "InvalidArgument",
                           "InvalidArgument", "ok"]
    assert isinstance(out[0], Refuse) and out[0].error.message == "invalid enrollment token"
    assert isinstance(out[4], Refuse) and isinstance(out[4].error, InvalidArgument)


def test_takeover_is_refused_takes_no_use_and_says_what_to_log() -> None:
    t = token(max_uses=2)
    victim = DeviceRow(id="dev-1", client_id=CLIENT, machine_id="victim", credential_hash=hash_secret("cred-1"))
    out = decide([ask("victim"), ask("victim", proof="guessed"), ask("a"), ask("b")], {t.token_hash: t}, [victim], T0)
    assert errors(out) == ["PermissionDenied", "PermissionDenied", "ok", "ok"]  # refusals took no use
    first, second = out[0], out[1]
    assert isinstance(first, Refuse) and isinstance(first.error, PermissionDenied)
    assert "convoy devices replace dev-1" in first.error.message
    assert "no device credential sent" in first.warning and "10.0.0.9" in first.warning
    assert isinstance(second, Refuse) and "wrong device credential" in second.warning


def test_reinstall_with_proof_and_a_second_one_in_the_same_batch() -> None:
    t = token()
    dev = DeviceRow(id="dev-1", client_id=CLIENT, machine_id="m", credential_hash=hash_secret("cred-1"))
    out = decide([ask("m", proof="cred-1"), ask("m", proof="cred-1")], {t.token_hash: t}, [dev], T0)
    assert isinstance(out[0], Admit) and out[0].device_id == "dev-1"
    # the first call rotated the credential: the old one proves nothing any more
    assert isinstance(out[1], Refuse) and isinstance(out[1].error, PermissionDenied)


def test_same_new_machine_twice_in_a_batch() -> None:
    t = token()
    out = decide([ask("m"), ask("m"), ask("n")], {t.token_hash: t}, [], T0)
    assert isinstance(out[0], Admit) and out[0].device_id is None
    assert isinstance(out[1], Refuse) and isinstance(out[1].error, Conflict)
    assert isinstance(out[2], Admit)


def test_replacement_token_moves_its_device_to_the_new_machine_id_once() -> None:
    old = DeviceRow(id="dev-1", client_id=CLIENT, machine_id="old-disk", credential_hash=hash_secret("c1"))
    other = DeviceRow(id="dev-2", client_id=CLIENT, machine_id="bystander", credential_hash=hash_secret("c2"))
    repl = token("repl", device_id="dev-1", max_uses=1, expires_at=T0 + timedelta(hours=1))
    plain = token("plain")
    tokens = {repl.token_hash: repl, plain.token_hash: plain}
    out = decide([ask("bystander", "repl"), ask("new-disk", "repl"), ask("new-disk", "repl"), ask("old-disk", "plain")],
                 tokens, [old, other], T0)
    assert errors(out) == ["Conflict", "ok", "Unauthenticated", "ok"]
    assert isinstance(out[1], Admit) and (out[1].device_id, out[1].machine_id) == ("dev-1", "new-disk")
    # the old machine id is free again: a new device
    assert isinstance(out[3], Admit) and out[3].device_id is None
    gone = token("gone", device_id="dev-9", max_uses=1)
    out = decide([ask("x", "gone")], {gone.token_hash: gone}, [], T0)
    assert isinstance(out[0], Refuse) and "no longer exists" in out[0].error.message
