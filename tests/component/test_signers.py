"""Signed work on the coordinator, on both stores: signer keys over REST and gRPC (roles, scoping,
400/404/409), the manifest a pending deployment offers, a signed start stored and sent with every
job (and a signed rollback), the refusals of bad signatures, and signed trust-set documents
forwarded in Welcome."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import grpc

from common import signing
from common.convoy.v1 import admin_pb2 as pb
from tests.component.deploy_helpers import Rest, body, fleet, script
from tests.harness import InProcessCoordinator, rpc_code


def _token(c: InProcessCoordinator, role: str, client_id: str | None = None) -> str:
    return str(c.admin().CreateApiToken(pb.CreateApiTokenRequest(
        client_ids=[client_id or c.client_id], role=role, name=role)).token)


def _key() -> signing.Signer:
    return signing.Signer(signing.generate_private_key()[0])


def _error(rest: Rest, method: str, path: str, status: int, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = rest(method, path, status, **kw)["error"]
    return out


def _sign(c: InProcessCoordinator, signer: signing.Signer, dep_id: str, *, rollback: bool = False,
          **over: Any) -> dict[str, str]:
    got = Rest(c)("GET", f"/deployments/{dep_id}/manifest" + ("?rollback=true" if rollback else ""))
    m = signing.Manifest.parse(got["manifest"])
    assert m.digest == signing.payload_digest(got["payload"])
    fields = {"deployment_id": m.deployment_id, "client_id": m.client_id, "type": m.type, "digest": m.digest,
              "rollback": m.rollback, "expires_at": signing.now_utc() + timedelta(hours=1), **over}
    return signing.sign_manifest(signer, signing.Manifest(**fields))


def test_signer_keys_lifecycle_and_rules(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    admin = Rest(c)
    path = f"/clients/{c.client_id}/signers"
    k = _key()
    out = admin("POST", path, 201, json={"publicKey": k.public_key, "name": "alice"})
    assert (out["keyId"], out["publicKey"], out["name"], out["revokedAt"]) == (k.key_id, k.public_key, "alice", None)
    assert admin("GET", path) == {"data": [out], "total": 1}

    assert _error(admin, "POST", path, 409, json={"publicKey": k.public_key})["code"] == "conflict"
    for bad, field in (({}, "publicKey"), ({"publicKey": "ssh-ed25519 AAAA"}, "publicKey"),
                       ({"publicKey": "ed25519:QUFB"}, "publicKey"),
                       ({"publicKey": _key().public_key, "name": 5}, "name")):
        assert _error(admin, "POST", path, 400, json=bad)["details"]["parameter"] == field
    assert _error(admin, "POST", "/clients/nope/signers", 400, json={"publicKey": k.public_key})["details"][
        "parameter"] == "clientId"

    # admin role to register or revoke; any role of the client reads; other clients see nothing
    operator = Rest(c, _token(c, "operator"))
    assert "admin role required" in _error(operator, "POST", path, 403, json={"publicKey": _key().public_key})["message"]
    assert Rest(c, _token(c, "viewer"))("GET", path)["total"] == 1
    other = str(c.admin().CreateClient(pb.CreateClientRequest(name="other")).id)
    stranger = Rest(c, _token(c, "admin", other))
    assert _error(stranger, "GET", path, 403)["code"] == "forbidden"
    assert stranger("GET", f"/clients/{other}/signers")["total"] == 0

    # gRPC twins
    k2 = _key()
    got = c.admin().RegisterSigner(pb.RegisterSignerRequest(client_id=c.client_id, public_key=k2.public_key))
    assert got.key_id == k2.key_id
    assert c.admin().ListSigners(pb.ListSignersRequest(client_id=c.client_id)).total == 2
    assert rpc_code(c.admin().RegisterSigner, pb.RegisterSignerRequest(
        client_id=c.client_id, public_key="bad")) == grpc.StatusCode.INVALID_ARGUMENT

    # revoke
    assert admin("DELETE", f"{path}/{k.key_id}")["revokedAt"]
    assert _error(admin, "DELETE", f"{path}/{k.key_id}", 409)["code"] == "conflict"
    assert _error(admin, "DELETE", f"{path}/{'f' * 32}", 404)["code"] == "not_found"
    assert rpc_code(c.admin().RevokeSigner, pb.RevokeSignerRequest(
        client_id=c.client_id, key_id="0" * 32)) == grpc.StatusCode.NOT_FOUND


def test_signed_start_is_checked_stored_and_sent_with_every_job(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    rest = Rest(c)
    agents = fleet(c, 2)
    k = _key()
    rest("POST", f"/clients/{c.client_id}/signers", 201, json={"publicKey": k.public_key})
    dep = rest("POST", "/deployments", 201, json=body(script(c), [a.device_id for a in agents]))["id"]

    # a draft has no manifest yet (nothing is frozen)
    assert _error(rest, "GET", f"/deployments/{dep}/manifest", 409)["code"] == "conflict"
    rest("POST", f"/deployments/{dep}/initialize")
    assert _error(rest, "GET", f"/deployments/{dep}/manifest?rollback=maybe", 400)["details"]["parameter"] == "rollback"

    # refusals name the field and leave the deployment pending
    good = _sign(c, k, dep)
    stranger = _key()
    for sig, field in (
            ({**good, "keyId": stranger.key_id}, "signature.keyId"),
            ({**good, "value": _sign(c, stranger, dep)["value"]}, "signature.value"),
            (_sign(c, k, dep, expires_at=signing.now_utc() - timedelta(seconds=5)), "signature.manifest"),
            (_sign(c, k, dep, rollback=False, digest="sha256:" + "0" * 64), "signature.manifest"),
            (_sign(c, k, dep, deployment_id="00000000-0000-4000-8000-000000000000"), "signature.manifest"),
            ({**good, "manifest": json.dumps(json.loads(good["manifest"]), indent=1)}, "signature.manifest"),
            ({"keyId": k.key_id}, "signature.value")):
        err = _error(rest, "POST", f"/deployments/{dep}/start", 400, json={"signature": sig})
        assert err["details"]["parameter"] == field, (field, err)
    assert rest("GET", f"/deployments/{dep}")["status"] == "pending"

    # gRPC start with the good signature: stored, shown, and in every job the agents get
    started = c.admin().StartDeployment(pb.StartDeploymentRequest(id=dep, signature=pb.WorkSignature(
        key_id=good["keyId"], value=good["value"], manifest=good["manifest"])))
    assert started.signed_by == k.key_id
    rest.wait_status(dep, "completed")
    assert rest("GET", f"/deployments/{dep}")["signedBy"] == k.key_id
    audit = rest("GET", f"/deployments/{dep}/audit")["data"]
    assert any(e["reason"] == f"signed by {k.key_id}" and e["toStatus"] != "pending" for e in audit), audit
    for a in agents:
        [job] = [j for j in a.jobs if j.deployment_id == dep]
        assert (job.manifest, job.signature_key_id, job.signature) == (good["manifest"], k.key_id, good["value"])
        assert signing.verify(k.public_key, signing.SIGNING_CONTEXT, job.manifest.encode(), job.signature)

    # a signed rollback: the manifest of "revert `dep`", carried by the rollback's jobs
    rb_sig = _sign(c, k, dep, rollback=True)
    assert json.loads(rb_sig["manifest"])["rollback"] is True
    assert _error(rest, "POST", f"/deployments/{dep}/rollback", 400, json={"signature": good})["details"][
        "parameter"] == "signature.manifest"  # the start signature is not a rollback signature
    rb = rest("POST", f"/deployments/{dep}/rollback", 201, json={"signature": rb_sig})
    assert rb["signedBy"] == k.key_id
    rest.wait_status(rb["id"], "completed")
    for a in agents:
        [job] = [j for j in a.jobs if j.deployment_id == rb["id"]]
        assert job.rollback and job.manifest == rb_sig["manifest"]

    # unsigned starts still work (agents without a trust set run them)
    dep2 = rest("POST", "/deployments", 201, json=body(script(c), [agents[0].device_id]))["id"]
    rest("POST", f"/deployments/{dep2}/initialize")
    assert rest("POST", f"/deployments/{dep2}/start")["signedBy"] is None
    rest.wait_status(dep2, "completed")
    [job] = [j for j in agents[0].jobs if j.deployment_id == dep2]
    assert job.manifest == "" and job.signature == ""


def test_trust_set_documents(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    rest = Rest(c)
    path = f"/clients/{c.client_id}/trust-set"
    k, new = _key(), _key()
    rest("POST", f"/clients/{c.client_id}/signers", 201, json={"publicKey": k.public_key})
    assert _error(rest, "GET", path, 404)["code"] == "not_found"
    doc = signing.trust_document(c.client_id, 1, [k.public_key, new.public_key])
    sig = k.sign(signing.TRUST_SET_CONTEXT, doc)
    # not a registered signer's signature, wrong context, other client, not canonical
    assert _error(rest, "PUT", path, 400, json={"document": doc.decode(), "keyId": new.key_id,
                                                "signature": new.sign(signing.TRUST_SET_CONTEXT, doc)})
    assert _error(rest, "PUT", path, 400, json={"document": doc.decode(), "keyId": k.key_id,
                                                "signature": k.sign(signing.SIGNING_CONTEXT, doc)})
    other = signing.trust_document("00000000-0000-4000-8000-000000000000", 1, [k.public_key])
    assert "client" in _error(rest, "PUT", path, 400, json={
        "document": other.decode(), "keyId": k.key_id, "signature": k.sign(signing.TRUST_SET_CONTEXT, other)})["message"]
    loose = json.dumps(json.loads(doc), indent=1)
    assert _error(rest, "PUT", path, 400, json={"document": loose, "keyId": k.key_id,
                                                "signature": k.sign(signing.TRUST_SET_CONTEXT, loose.encode())})
    out = rest("PUT", path, json={"document": doc.decode(), "keyId": k.key_id, "signature": sig})
    assert out["serial"] == 1 and rest("GET", path)["document"] == doc.decode()
    assert _error(rest, "PUT", path, 409, json={"document": doc.decode(), "keyId": k.key_id, "signature": sig})

    # forwarded in Welcome to the client's agents
    [agent] = fleet(c, 1)
    assert agent.welcome is not None
    assert (agent.welcome.trust_set.document, agent.welcome.trust_set.key_id) == (doc.decode(), k.key_id)
