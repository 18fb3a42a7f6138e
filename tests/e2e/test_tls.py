"""TLS through the real interfaces: a `convoy coordinator serve` subprocess over TLS, the CLI
trusting its CA by file or fingerprint, REST over https, `--insecure` refused off loopback, and
an impostor coordinator (another CA, or our CA's certificate copied into its chain) that gets
nothing from `convoy agent install` or `convoy agent run`."""

from __future__ import annotations

import json
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import agent_pb2_grpc
from common.transport import free_port_pair
from coordinator.tls import ensure_server_cert
from tests.harness import CoordinatorProcess, run_cli, terminate
from tests.real_agents import RealAgent

pytestmark = pytest.mark.slow


class Impostor(agent_pb2_grpc.AgentServiceServicer):
    """A TLS AgentService that records every call it receives (and answers none usefully)."""

    def __init__(self, chain_pem: bytes, key_pem: bytes) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.server = grpc.server(ThreadPoolExecutor(4))
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self, self.server)
        # Both ports a coordinator has (gRPC, and the agent port above it): what a spoofed address gets.
        self.port = free_port_pair("127.0.0.1")
        for port in (self.port, self.port + 1):
            self.server.add_secure_port(f"127.0.0.1:{port}", grpc.ssl_server_credentials([(key_pem, chain_pem)]))
        self.server.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _record(self, name: str, context: Any) -> None:
        with self.lock:
            self.calls.append(f"{name} {dict(context.invocation_metadata())}")
        context.abort(grpc.StatusCode.UNAVAILABLE, "impostor")

    def Enroll(self, request: Any, context: Any) -> Any:
        self._record("Enroll", context)

    def Connect(self, request_iterator: Any, context: Any) -> Any:
        self._record("Connect", context)
        yield from ()


def make_impostor(tmp_path: Path, real: CoordinatorProcess, kind: str) -> Impostor:
    """own-ca: the impostor's own CA and certificate for 127.0.0.1. copied-ca: the same leaf, but
    the real coordinator's CA certificate (public) sent in its chain, so the pin matches a
    certificate it presents; only the signature check can tell."""
    mat = ensure_server_cert(tmp_path / f"impostor-{kind}", ["127.0.0.1", "localhost"])
    chain = mat.server.cert_chain_pem
    if kind == "copied-ca":
        leaf = chain.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
        chain = leaf + Path(real.ca_file).read_bytes()
    return Impostor(chain, mat.server.key_pem)


def test_insecure_is_refused_off_loopback(tmp_path: Path) -> None:
    for grpc_listen, http_listen, flag in (("0.0.0.0:0", "127.0.0.1:0", "--grpc-listen"),
                                           ("127.0.0.1:0", "0.0.0.0:0", "--http-listen")):
        res = run_cli("coordinator", "serve", "--insecure", "--data-dir", str(tmp_path / "d"), "--grpc-listen",
                      grpc_listen, "--http-listen", http_listen, check=False, timeout=30)
        assert res.returncode == 2, res.stderr
        assert res.stderr.count("\n") == 1 and f"--insecure is refused on {flag}" in res.stderr
        assert "Traceback" not in res.stderr


def test_cli_and_rest_trust_the_ca_by_file_or_fingerprint(coordinator_proc: CoordinatorProcess) -> None:
    c = coordinator_proc
    assert c.ca_fingerprint.startswith("sha256:") and Path(c.ca_file).is_file()
    # the store and the keys are the coordinator's alone
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [c.data_dir, *c.data_dir.rglob("*")]}
    assert modes["coord"] == 0o700 and modes["tls"] == 0o700
    assert modes["convoy.db"] == 0o600 and modes["ca.key"] == 0o600 and modes["server.key"] == 0o600
    by_file = run_cli("clients", "list", "-o", "json", server=c.grpc_target, token=c.token,
                      env={"CONVOY_CA": c.ca_file})
    by_fp = run_cli("clients", "list", "-o", "json", server=c.grpc_target, token=c.token,
                    env={"CONVOY_CA_FINGERPRINT": c.ca_fingerprint})
    by_flag = run_cli("clients", "list", "-o", "json", "--ca", c.ca_file, server=c.grpc_target, token=c.token)
    assert json.loads(by_file.stdout) == json.loads(by_fp.stdout) == json.loads(by_flag.stdout)

    def refused(env: dict[str, str], *flags: str) -> tuple[int, str]:
        res = run_cli("clients", "list", *flags, server=c.grpc_target, token=c.token, env=env, check=False)
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr
        return res.returncode, res.stderr

    code, err = refused({})  # no CA given: the system roots, which do not know this CA
    assert code == 7 and "not trusted" in err
    code, err = refused({"CONVOY_CA_FINGERPRINT": "sha256:" + "0" * 64})
    assert code == 7 and "presents no certificate with fingerprint sha256:000" in err
    code, err = refused({}, "--insecure")  # plaintext to a TLS server gets nowhere
    assert code == 6 and "cannot reach" in err

    headers = {"Authorization": f"Bearer {c.token}"}
    r = httpx.get(f"{c.http_url}/v2/deployments", headers=headers, verify=c.verify, timeout=10)
    assert c.http_url.startswith("https://") and r.status_code == 200
    with pytest.raises(httpx.ConnectError):  # the default trust store does not know our CA
        httpx.get(f"{c.http_url}/v2/deployments", headers=headers, timeout=10)
    with pytest.raises(httpx.HTTPError):  # plaintext HTTP to the TLS listener
        httpx.get(f"http://127.0.0.1:{c.http_port}/v2/deployments", headers=headers, timeout=10)


def test_install_refuses_an_impostor_and_sends_it_nothing(coordinator_proc: CoordinatorProcess,
                                                          tmp_path: Path) -> None:
    c = coordinator_proc
    token = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id)).token
    state = tmp_path / "victim"
    for kind in ("own-ca", "copied-ca"):
        impostor = make_impostor(tmp_path, c, kind)
        try:
            for trust in (["--ca-fingerprint", c.ca_fingerprint], ["--ca", c.ca_file]):
                res = run_cli("agent", "install", "--server", impostor.target, "--token", token, "--state-dir",
                              str(state), "--machine-id", "victim", "--no-service", *trust, check=False)
                assert res.returncode == 7, (kind, res.stderr)
                assert res.stderr.count("\n") == 1 and "not trusted" in res.stderr, res.stderr
                assert not state.exists()
            assert impostor.calls == []
        finally:
            impostor.server.stop(0)
    # without any pin, install refuses to start at all
    res = run_cli("agent", "install", "--server", c.grpc_target, "--token", token, "--state-dir", str(state),
                  "--machine-id", "victim", "--no-service", check=False)
    assert res.returncode == 2 and "--ca-fingerprint" in res.stderr and not state.exists()


def test_agent_run_refuses_an_impostor(coordinator_proc: CoordinatorProcess, tmp_path: Path) -> None:
    c = coordinator_proc
    impostor = make_impostor(tmp_path, c, "copied-ca")  # the harder case: the pinned CA is in its chain
    token = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id)).token
    agent = RealAgent(c, tmp_path, "pinned")
    agent.install(token)
    assert (agent.state_dir / "ca.pem").read_bytes() == Path(c.ca_file).read_bytes()
    # what a spoofed DNS answer amounts to: the agent's coordinator address now leads elsewhere
    identity_path = agent.state_dir / "agent.json"
    identity = json.loads(identity_path.read_text())
    identity["server"] = impostor.target
    identity["servers"] = [impostor.target]  # every address agent.json lists (docs/replicas.md)
    identity_path.write_text(json.dumps(identity))
    agent.start()
    try:
        deadline = time.monotonic() + 20
        while "CERTIFICATE_VERIFY_FAILED" not in agent.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "CERTIFICATE_VERIFY_FAILED" in agent.log(), agent.log()
        assert agent.proc is not None and agent.proc.poll() is None  # it keeps trying, refusing
    finally:
        terminate(agent.proc)
        impostor.server.stop(0)
    assert impostor.calls == []
    credential = (agent.state_dir / "credential").read_text()
    assert credential not in "".join(impostor.calls)
