"""Device identity that can't be borrowed (docs/security.md, "Device certificates"), through the
real interfaces: a real `convoy agent install` makes a key and gets a certificate, a real
`convoy agent run` runs a job over mutual TLS on the agent port; the device's credential replayed
from another process, without the device key, is refused whatever certificate it comes with; a
takeover by machine id with the credential but not the key is refused; proof by the old key
(a reinstall from the state dir) works, and retires the old certificate."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from common import pins, transport
from common.convoy.v1 import admin_pb2, agent_pb2, agent_pb2_grpc
from coordinator.device_certs import issue, load_ca
from tests.agents import wait_for
from tests.e2e.test_real_agents import script, spec
from tests.harness import CoordinatorProcess, run_cli
from tests.real_agents import RealFleet

pytestmark = pytest.mark.slow


def _agent_target(c: CoordinatorProcess) -> str:
    return f"127.0.0.1:{c.grpc_port + 1}"


def _call(target: str, tls: transport.ClientTLS, credential: str) -> grpc.RpcError | None:
    """One agent call (DownloadArtifact) with `credential`; its error, or None if it was served."""
    stub = agent_pb2_grpc.AgentServiceStub(transport.sync_channel(target, tls))
    try:
        list(stub.DownloadArtifact(agent_pb2.DownloadArtifactRequest(sha256="0" * 64),
                                   metadata=[("authorization", f"Bearer {credential}")], timeout=10))
    except grpc.RpcError as exc:
        return exc
    return None


def _with_cert(c: CoordinatorProcess, key: bytes, cert: bytes) -> transport.ClientTLS:
    return transport.ClientTLS(ca_pem=Path(c.ca_file).read_bytes(), client_key_pem=key, client_cert_pem=cert)


def test_agent_enrolls_with_its_key_and_runs_a_job_over_mutual_tls(env: tuple[CoordinatorProcess, RealFleet],
                                                                    tmp_path: Path) -> None:
    coord, fleet = env
    [agent] = fleet.add(1)
    state = agent.state_dir
    assert stat.S_IMODE((state / "device.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((state / "device.pem").read_bytes())
    assert cert.subject.rfc4514_string() == f"O={coord.client_id},CN={agent.device_id}"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"urn:convoy:device:{agent.device_id}" in sans.get_values_for_type(x509.UniformResourceIdentifier)
    assert f"urn:convoy:client:{coord.client_id}" in sans.get_values_for_type(x509.UniformResourceIdentifier)
    assert 360 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 366
    assert b"PRIVATE KEY" not in (state / "agent.json").read_bytes() + (state / "device.pem").read_bytes()

    out = tmp_path / "out"
    out.mkdir()
    sid = script(coord, 'echo "over mtls" > "$CONVOY_PARAM_DIR/$CONVOY_DEVICE_ID"',
                 schema=json.dumps({"type": "object", "properties": {"dir": {"type": "string"}}}))
    dep = fleet.deploy(spec("script", {"scriptId": sid, "parameters": {"dir": str(out)}}, [agent.device_id]))
    assert fleet.wait_finished(dep)["status"] == "completed"
    assert (out / agent.device_id).read_text() == "over mtls\n"
    assert f"coordinator {_agent_target(coord)}" in agent.log()  # it dialled the agent port

    device = fleet.api("GET", f"/clients/{coord.client_id}/devices/{agent.device_id}")
    assert device["identity"] == "certificate" and device["certificate_expires_at"]

    # The idle daemon hands PEM files to gRPC: it never loads cryptography (docs/security.md, "Cost").
    assert agent.proc is not None
    maps = Path(f"/proc/{agent.proc.pid}/maps").read_text()
    assert "cryptography" not in maps


def test_a_replayed_credential_without_the_device_key_is_refused(env: tuple[CoordinatorProcess, RealFleet],
                                                                 tmp_path: Path) -> None:
    coord, fleet = env
    victim, other = fleet.add(2)
    credential = (victim.state_dir / "credential").read_text().strip()
    key, cert = (victim.state_dir / "device.key").read_bytes(), (victim.state_dir / "device.pem").read_bytes()

    # the gRPC port, over TLS, with the credential alone (what a stolen credential file gives)
    err = _call(coord.grpc_target, coord.tls, credential)
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "credential alone is refused" in (err.details() or "")

    # the agent port without a client certificate, or with one another CA signed for this very
    # device: the TLS handshake fails, nothing reaches the servicer
    genuine = x509.load_pem_x509_certificate(cert)
    spki = genuine.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    forged = issue(load_ca(tmp_path / "foreign"), spki, victim.device_id, coord.client_id,
                   genuine.not_valid_before_utc)
    for tls in (coord.tls, _with_cert(coord, key, forged.pem.encode())):
        err = _call(_agent_target(coord), tls, credential)
        assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE, err

    # another device's genuine certificate and key, with the victim's credential
    other_tls = _with_cert(coord, (other.state_dir / "device.key").read_bytes(),
                           (other.state_dir / "device.pem").read_bytes())
    err = _call(_agent_target(coord), other_tls, credential)
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert f"not device {victim.device_id}'s current certificate" in (err.details() or "")

    # the device's own key and certificate: authenticated (refused only for the made-up artifact)
    err = _call(_agent_target(coord), _with_cert(coord, key, cert), credential)
    assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED, err
    assert wait_for(lambda: fleet.api("GET", f"/clients/{coord.client_id}/devices/{victim.device_id}")["online"],
                    timeout=10, what="the victim still online")


def test_takeover_needs_the_old_key_and_a_reinstall_proves_it(env: tuple[CoordinatorProcess, RealFleet],
                                                              tmp_path: Path) -> None:
    coord, fleet = env
    [agent] = fleet.add(1)
    agent.stop()
    token = coord.admin().CreateEnrollmentToken(admin_pb2.CreateEnrollmentTokenRequest(client_id=coord.client_id)).token
    machine_id = f"it-{agent.name}"

    def install(state: Path) -> subprocess.CompletedProcess[str]:
        return run_cli("agent", "install", "--server", coord.grpc_target, "--token", token, "--state-dir",
                       str(state), "--machine-id", machine_id, "--no-service", "-o", "json",
                       *coord.install_trust(), check=False)

    # the stolen state without device.key: the credential alone no longer proves the device
    thief = tmp_path / "thief"
    thief.mkdir()
    for name in ("agent.json", "credential", "ca.pem"):
        shutil.copy(agent.state_dir / name, thief / name)
    res = install(thief)
    assert res.returncode == 3, res.stderr
    assert "no proof by that key" in res.stderr and res.stderr.count("\n") == 1
    assert f"is already enrolled as device {agent.device_id}" in res.stderr
    assert "refused" in coord.log_path.read_text() and machine_id in coord.log_path.read_text()

    # a key of its own does not help either: it signs, but with the wrong key
    (thief / "device.key").write_bytes(load_ca(tmp_path / "junk").key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    res = install(thief)
    assert res.returncode == 3 and "does not verify" in res.stderr, res.stderr

    # the device's own state dir proves it with the old key: same device, a new certificate
    old_key, old_cert = (agent.state_dir / "device.key").read_bytes(), (agent.state_dir / "device.pem").read_bytes()
    res = install(agent.state_dir)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["device_id"] == agent.device_id
    new_cert = (agent.state_dir / "device.pem").read_bytes()
    assert new_cert != old_cert and (agent.state_dir / "device.key").read_bytes() != old_key
    credential = (agent.state_dir / "credential").read_text().strip()
    err = _call(_agent_target(coord), _with_cert(coord, old_key, old_cert), credential)
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED  # the old certificate is retired
    assert pins.fingerprint(pins.pem_certificates(new_cert)[0]) != pins.fingerprint(pins.pem_certificates(old_cert)[0])
    agent.start()
    fleet.wait_online([agent])


def test_insecure_coordinator_keeps_bearer_only_agents(tmp_path: Path) -> None:
    coord = CoordinatorProcess(tmp_path / "coord", insecure=True)
    coord.bootstrap()
    coord.start()
    fleet = RealFleet(coord, tmp_path / "agents")
    fleet.root.mkdir()
    try:
        [agent] = fleet.add(1)
        assert not (agent.state_dir / "device.key").exists() and not (agent.state_dir / "device.pem").exists()
        device = fleet.api("GET", f"/clients/{coord.client_id}/devices/{agent.device_id}")
        assert device["identity"] == "bearer"
    finally:
        fleet.stop()
        coord.stop()



def test_agent_renews_its_certificate_when_due(env: tuple[CoordinatorProcess, RealFleet]) -> None:
    coord, fleet = env
    [agent] = fleet.add(1)
    agent.stop()
    old_cert = (agent.state_dir / "device.pem").read_bytes()
    identity_path = agent.state_dir / "agent.json"
    identity = json.loads(identity_path.read_text())
    assert identity["cert_not_after"] > identity["cert_not_before"] > "2026"
    # as if two thirds of its year had passed: renewal is due (agent/renewal.py)
    identity["cert_not_before"] = "2020-01-01T00:00:00Z"
    identity_path.write_text(json.dumps(identity))
    agent.start()
    wait_for(lambda: "device certificate renewed" in agent.log(), timeout=30, what="the renewal logged")
    fleet.wait_online([agent])
    new_cert = (agent.state_dir / "device.pem").read_bytes()
    assert new_cert != old_cert and json.loads(identity_path.read_text())["cert_not_before"] > "2026"
    credential = (agent.state_dir / "credential").read_text().strip()
    key = (agent.state_dir / "device.key").read_bytes()
    err = _call(_agent_target(coord), _with_cert(coord, key, old_cert), credential)
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED  # the old one is retired
    wait_for(lambda: (e := _call(_agent_target(coord), _with_cert(coord, key, new_cert), credential)) is not None
             and e.code() == grpc.StatusCode.PERMISSION_DENIED, timeout=10, what="the new certificate accepted")
    # the credential alone cannot get a certificate for a key of its own by "renewing"
    stub = agent_pb2_grpc.AgentServiceStub(transport.sync_channel(coord.grpc_target, coord.tls))
    with pytest.raises(grpc.RpcError) as exc:
        stub.RenewCertificate(agent_pb2.RenewCertificateRequest(csr=b"x"),
                              metadata=[("authorization", f"Bearer {credential}")], timeout=10)
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_require_device_certs_refuses_an_enrollment_without_a_key(tmp_path: Path) -> None:
    coord = CoordinatorProcess(tmp_path / "coord", extra=("--require-device-certs",))
    coord.bootstrap()
    coord.start()
    try:
        token = coord.admin().CreateEnrollmentToken(
            admin_pb2.CreateEnrollmentTokenRequest(client_id=coord.client_id)).token
        stub = agent_pb2_grpc.AgentServiceStub(transport.sync_channel(coord.grpc_target, coord.tls))
        with pytest.raises(grpc.RpcError) as exc:  # what an older agent or the simulator sends
            stub.Enroll(agent_pb2.EnrollRequest(token=token, machine_id="old-agent"), timeout=10)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "csr" in (exc.value.details() or "")
        res = run_cli("agent", "install", "--server", coord.grpc_target, "--token", token, "--state-dir",
                      str(tmp_path / "a"), "--machine-id", "new-agent", "--no-service", *coord.install_trust(),
                      check=False)
        assert res.returncode == 0, res.stderr
    finally:
        coord.stop()
