"""`convoy keys …`: operators' signing keys, and signing a deployment's manifest on start.

The private key is made and kept on the operator's machine (mode 0600) and never sent anywhere;
the coordinator learns only the public half (`keys register`). See docs/security.md, "Signed work".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from cli.common import CliError, call, command, emit, print_table, to_dict
from common import signing
from common.convoy.v1 import admin_pb2 as pb

DEFAULT_KEY_DIR = "~/.config/convoy/keys"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# --- key files -------------------------------------------------------------------------------


def load_signer(path: str) -> signing.Signer:
    try:
        pem = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read the signing key {path}: {exc.strerror or exc}", 2) from None
    signer = signing.Signer(pem)
    try:
        _ = signer.key_id
    except signing.SigningError as exc:
        raise CliError(f"{path}: {exc}", 2) from None
    return signer


def public_key_of(value: str) -> str:
    """A public key from `ed25519:<base64>`, a .pub file, or a private key file (its public half)."""
    text = value.strip()
    if not text.startswith(signing.KEY_PREFIX):
        try:
            text = Path(value).expanduser().read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{value!r} is neither ed25519:<base64> nor a readable key file ({exc})", 2) from None
        if text.startswith("-----BEGIN"):
            return load_signer(value).public_key
    try:
        return signing.format_public_key(signing.parse_public_key(text))
    except signing.SigningError as exc:
        raise CliError(str(exc), 2) from None


def _create(args: argparse.Namespace) -> int:
    if not _NAME.match(args.name):
        raise CliError("--name: letters, digits, '.', '_' and '-' only (it names the key files)", 2)
    out_dir = Path(args.out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path, pub_path = out_dir / f"{args.name}.key", out_dir / f"{args.name}.pub"
    pem, public = signing.generate_private_key()
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"{key_path} exists: choose another --name or --out (a key is never overwritten)", 5) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_text(public + "\n")
    kid = signing.key_id(signing.parse_public_key(public))
    out = {"name": args.name, "key_id": kid, "public_key": public, "private_key_file": str(key_path),
           "public_key_file": str(pub_path)}
    emit(args, out, lambda: print(
        f"signing key {kid}\n  private: {key_path} (mode 0600; keep it here, it is never uploaded)\n"
        f"  public:  {public}\nnext: convoy keys register {pub_path} --client CLIENT_ID"))
    return 0


def _signer_row(msg: Any) -> dict[str, Any]:
    out = to_dict(msg, snake=True)
    out["revoked_at"] = out.get("revoked_at") or None
    return out


def _register(args: argparse.Namespace) -> int:
    public = public_key_of(args.key)
    out = _signer_row(call(args, "RegisterSigner", pb.RegisterSignerRequest(
        client_id=args.client or "", public_key=public, name=args.name or "")))
    emit(args, out, lambda: print(f"registered signer {out['key_id']} for client {out['client_id']}; "
                                  f"agents pin it with: --trust-key {out['public_key']}"))
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = [_signer_row(r) for r in call(args, "ListSigners", pb.ListSignersRequest(client_id=args.client or "")).data]
    emit(args, rows, lambda: print_table(
        ["key_id", "name", "public_key", "created_at", "revoked"],
        [[r["key_id"], r["name"], r["public_key"], r["created_at"], r["revoked_at"] or "no"] for r in rows]))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    out = _signer_row(call(args, "RevokeSigner", pb.RevokeSignerRequest(client_id=args.client or "",
                                                                       key_id=args.key_id)))
    emit(args, out, lambda: print(f"revoked signer {out['key_id']}: the coordinator refuses its signatures from "
                                  "now on; agents that pinned it trust it until `convoy keys rotate` removes it"))
    return 0


def _rotate(args: argparse.Namespace) -> int:
    """A new trust set for the client's agents, signed by a key they already trust.

    The new set is given whole (`--trust-key`, repeatable): it is never derived from what the
    coordinator says the current set is, so a coordinator cannot slip a key of its own into it.
    Only the serial comes from the coordinator (a lower one than agents hold makes them ignore
    the update; it cannot add a key)."""
    signer = load_signer(args.sign_key)
    keys = sorted({public_key_of(k) for k in args.trust_key})
    if not keys:
        raise CliError("give the whole new set with --trust-key (repeatable)", 2)
    client_id = args.client or ""
    serial = args.serial
    if serial is None:
        try:
            current = call(args, "GetTrustSet", pb.ListSignersRequest(client_id=client_id))
            serial, client_id = int(current.serial) + 1, current.client_id
        except CliError as exc:
            if exc.exit_code != 4:
                raise
            serial = 1
    if not client_id:
        rows = call(args, "ListSigners", pb.ListSignersRequest(client_id="")).data
        client_id = rows[0].client_id if rows else ""
        if not client_id:
            raise CliError("pass --client", 2)
    if serial < 1:
        raise CliError("--serial must be at least 1", 2)
    document = signing.trust_document(client_id, serial, keys)
    sig = signer.sign(signing.TRUST_SET_CONTEXT, document)
    out = to_dict(call(args, "PublishTrustSet", pb.PublishTrustSetRequest(
        client_id=client_id, document=document.decode(), key_id=signer.key_id, signature=sig)), snake=True)
    out["serial"] = int(out["serial"])
    out["keys"] = keys
    emit(args, out, lambda: print(
        f"published trust set {serial} for client {client_id}, signed by {signer.key_id}: "
        + ", ".join(signing.key_id(signing.parse_public_key(k)) for k in keys)
        + "\nagents adopt it when they next connect, if they trust the signing key"))
    return 0


# --- signing a deployment --------------------------------------------------------------------


def add_sign_args(p: argparse.ArgumentParser, *, expect: bool = True) -> None:
    p.add_argument("--sign-key", metavar="FILE", default=None,
                   help="sign the deployment's manifest with this private key (default: $CONVOY_SIGN_KEY)")
    p.add_argument("--sign-expires-in", default="7d", metavar="DURATION",
                   help="agents refuse the signed work after this long (default 7d)")
    if expect:
        p.add_argument("--expect", metavar="FILE", default=None,
                       help="sign only if the payload is this file: the script body, the artifact, or the policy "
                            "document (JSON)")


def _check_expected(path: str, type_: str, payload: dict[str, Any]) -> None:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise CliError(f"--expect {path}: {exc.strerror or exc}", 2) from None
    if type_ == "script":
        ok = data.decode("utf-8", "replace") == payload.get("body")
    elif type_ == "software":
        ok = hashlib.sha256(data).hexdigest() == (payload.get("artifact") or {}).get("sha256")
    elif type_ == "policy":
        try:
            ok = signing.canonical(json.loads(data)) == signing.canonical(payload.get("document"))
        except (ValueError, signing.SigningError):
            ok = False
    else:
        raise CliError("--expect applies to script, software and policy deployments", 2)
    if not ok:
        raise CliError(f"refusing to sign: the coordinator's {type_} payload is not {path}", 5)


def _describe(type_: str, payload: dict[str, Any]) -> str:
    if type_ == "script":
        body = str(payload.get("body", "")).encode()
        return (f"{payload.get('interpreter')} script, body sha256:{hashlib.sha256(body).hexdigest()} "
                f"({len(body)} bytes), parameters {json.dumps(payload.get('parameters') or {}, sort_keys=True)}")
    if type_ == "software":
        art = payload.get("artifact") or {}
        return f"artifact {art.get('name')} sha256:{art.get('sha256')} ({payload.get('action')})"
    if type_ == "policy":
        return f"policy {payload.get('name')} {payload.get('version')} ({payload.get('action')})"
    return f"packages {json.dumps(payload.get('packages'))} ({payload.get('action')})"


def work_signature(args: argparse.Namespace, deployment_id: str, *, rollback: bool,
                   script: tuple[str, str] | None = None) -> pb.WorkSignature | None:
    """Sign what the coordinator says agents will receive for `deployment_id` — after checking
    that its manifest is a manifest of *that* payload (digest recomputed here) for that deployment,
    and, with `script` (interpreter, body), that the payload runs exactly that. None when no key
    is given (`--sign-key` / `CONVOY_SIGN_KEY`)."""
    from common.durations import parse_duration

    path = getattr(args, "sign_key", None) or os.environ.get("CONVOY_SIGN_KEY")
    if not path:
        if getattr(args, "expect", None):
            raise CliError("--expect needs --sign-key (or CONVOY_SIGN_KEY)", 2)
        return None
    signer = load_signer(path)
    try:
        ttl = parse_duration(args.sign_expires_in)
    except ValueError as exc:
        raise CliError(f"--sign-expires-in: {exc}", 2) from None
    if ttl <= 0:
        raise CliError("--sign-expires-in must be positive", 2)
    got = call(args, "GetDeploymentManifest", pb.GetDeploymentManifestRequest(id=deployment_id, rollback=rollback))
    try:
        proposed = signing.Manifest.parse(got.manifest)
        payload = json.loads(got.payload)
    except (signing.SigningError, ValueError) as exc:
        raise CliError(f"refusing to sign: the coordinator's manifest is unusable: {exc}", 1) from None
    digest = signing.payload_digest(payload)
    if proposed.deployment_id != deployment_id or proposed.rollback != rollback or proposed.digest != digest:
        raise CliError("refusing to sign: the coordinator's manifest does not describe the payload it returned "
                       f"for deployment {deployment_id}", 1)
    if rollback and payload.get("revertsDeploymentId") != deployment_id:
        raise CliError("refusing to sign: the rollback payload does not name the deployment it reverts", 1)
    if getattr(args, "expect", None):
        _check_expected(args.expect, proposed.type, payload)
    if script is not None and (proposed.type, payload.get("interpreter"), payload.get("body")) != ("script", *script):
        raise CliError("refusing to sign: the coordinator's script is not the command given", 5)
    manifest = signing.Manifest(deployment_id=deployment_id, client_id=proposed.client_id, type=proposed.type,
                                digest=digest, rollback=rollback,
                                expires_at=signing.now_utc() + timedelta(seconds=ttl))
    signed = signing.sign_manifest(signer, manifest)
    print(f"signing with key {signer.key_id}: {'rollback of ' if rollback else ''}deployment {deployment_id}, "
          f"{_describe(proposed.type, payload)}, expires {manifest.to_dict()['expiresAt']}", file=sys.stderr)
    return pb.WorkSignature(key_id=signed["keyId"], value=signed["value"], manifest=signed["manifest"])


def warn_unsigned(args: argparse.Namespace, client_id: str) -> None:
    """After an unsigned start or rollback: say so on stderr when the client has signers, whose
    agents will refuse the work (a forgotten --sign-key is otherwise a fleet of failures)."""
    try:
        keys = trusted_keys(args, client_id)
    except CliError:
        return  # a courtesy: never fail a start that succeeded
    if keys:
        print(f"warning: started unsigned, but client {client_id} has {len(keys)} registered signer key(s): "
              "agents that pin them will fail these jobs with reason 'signature' (sign with --sign-key)",
              file=sys.stderr)


def trusted_keys(args: argparse.Namespace, client_id: str) -> list[str]:
    """The client's active signer keys, for the install command `tokens create` prints."""
    rows = call(args, "ListSigners", pb.ListSignersRequest(client_id=client_id)).data
    return [r.public_key for r in rows if not r.revoked_at]


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="operators' signing keys: agents with pinned keys run only signed work"
                          ).add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(keys, "create", "make an Ed25519 signing key pair on this machine (never uploaded)",
                f"  convoy keys create --name alice\n  convoy keys create --name ci --out /secure/keys -o json\n"
                f"  (default --out {DEFAULT_KEY_DIR}; the private key file is mode 0600)", _create, connection=False)
    p.add_argument("--name", default="signing", help="names the key files NAME.key and NAME.pub (default signing)")
    p.add_argument("--out", default=DEFAULT_KEY_DIR, metavar="DIR", help=f"where to write them (default {DEFAULT_KEY_DIR})")

    p = command(keys, "register", "give the coordinator a signer's public key (admin role)",
                "  convoy keys register ~/.config/convoy/keys/alice.pub --client CLIENT_ID --name alice\n"
                "  convoy keys register ed25519:AAAA… --client CLIENT_ID", _register)
    p.add_argument("key", metavar="PUBLIC_KEY_OR_FILE", help="ed25519:<base64>, a .pub file, or a private key file "
                   "(only its public half is sent)")
    p.add_argument("--client", help="client id (default: the API token's only client)")
    p.add_argument("--name", help="a label for the key")

    p = command(keys, "list", "list a client's signer keys", "  convoy keys list --client CLIENT_ID", _list,
                quiet="key_id")
    p.add_argument("--client", help="client id (default: the API token's only client)")

    p = command(keys, "revoke", "stop the coordinator accepting a key's signatures (admin role)",
                "  convoy keys revoke KEY_ID --client CLIENT_ID\n"
                "  (agents that pinned the key trust it until `convoy keys rotate --remove KEY_ID`)", _revoke)
    p.add_argument("key_id", metavar="KEY_ID")
    p.add_argument("--client", help="client id (default: the API token's only client)")

    p = command(keys, "rotate", "publish a new trust set for the client's agents, signed by a key they trust",
                "  convoy keys rotate --client CLIENT_ID --sign-key alice.key --trust-key bob.pub --trust-key carol.pub\n"
                "  (the whole new set; agents adopt it when they next connect, only if a key they trust signed it)",
                _rotate)
    p.add_argument("--client", help="client id (default: the API token's only client)")
    p.add_argument("--sign-key", required=True, metavar="FILE", help="a private key the agents already trust")
    p.add_argument("--trust-key", action="append", default=[], metavar="KEY_OR_FILE",
                   help="a key of the new set (repeatable; the set is exactly these keys)")
    p.add_argument("--serial", type=int, default=None,
                   help="the document's serial (default: one above the published one); agents take only higher ones")
