"""`convoy agent install`: enroll this device, install the agent locally, report the outcome.

    Enroll ──► pending record ──► local steps (each one logged) ──► ReportEnrollment
                                                                      success | error + log lines

With no service to start (`--no-service`, not root, no systemd) the steps after Enroll only
write the state it returns, so the success report goes with Enroll (`report_success`: one call
per install, docs/enrollment.md); a step that fails after it is reported as `error` all the same.

A rejected token (bad, expired, used up, revoked) fails `Enroll` before anything is written,
here or on the coordinator. A local step that fails is reported as `error` with every log line
so far, and the files this run wrote are removed again.

Before anything is sent, the coordinator must prove itself: with `--ca-fingerprint` its CA is
fetched and checked against the pin (common/transport.discover_ca), with `--ca` its chain must
verify against the given file; only `--insecure` skips this (a plaintext loopback coordinator).
The CA is stored in the state dir and `convoy agent run` trusts nothing else.

`--server` may list several coordinator addresses (replicas: `a:7443,b:7443`, docs/replicas.md):
the first one that answers proves the CA and takes the enrollment (an unreachable one is
skipped); all of them are stored in agent.json, and the pinned CA is the trust for every one.

Over TLS the install makes a new device key (agent/device_key.py) and sends a certificate
request for it with `Enroll`; the coordinator returns a device certificate, and every later
agent call presents it on the agent port (mutual TLS; docs/security.md, "Device certificates").

A reinstall from a state dir that already holds this machine's enrollment proves it is that
device: with the old device key (a signature over the new request and the time), and with the old
credential (`authorization: Bearer` metadata), which is the only proof a bearer-only device has.
That lets the coordinator hand the same device id back (docs/enrollment.md, "Reinstalling").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from agent import facts as facts_mod
from agent import trust_set
from agent.servers import parse_servers
from agent.state import AGENT_VERSION, AgentIdentity, StateDir, atomic_write
from common import device_identity, pins, systemd_units, transport
from common.clock import utcnow
from common.convoy.v1 import agent_pb2 as pb
from common.convoy.v1 import agent_pb2_grpc
from common.convoy.v1 import types_pb2 as tpb
from common.errors import from_rpc_error
from common.exits import EXIT_CODES, EXIT_UNTRUSTED, CliError
from common.timefmt import log_line

SYSTEMD_UNIT = Path("/etc/systemd/system/convoy-agent.service")
RPC_TIMEOUT = 30.0


@dataclass
class InstallLog:
    """The lines that become the record's error_logs: `<RFC 3339 time>: <message>`."""

    echo: bool = True
    lines: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        line = log_line(utcnow(), message)
        self.lines.append(line)
        if self.echo:
            print(line, file=sys.stderr, flush=True)


class StepFailed(Exception):
    pass


def facts_message(f: facts_mod.Facts) -> tpb.DeviceFacts:
    return tpb.DeviceFacts(
        hostname=f.hostname, os=f.os, os_version=f.os_version, arch=f.arch, cpu_count=f.cpu_count,
        memory_bytes=f.memory_bytes, ip_addresses=f.ip_addresses,
        disks=[tpb.Disk(mountpoint=d.mountpoint, fstype=d.fstype, total_bytes=d.total_bytes,
                        free_bytes=d.free_bytes) for d in f.disks])


def _rpc_error(exc: grpc.RpcError, server: str, what: str) -> CliError:
    err = from_rpc_error(exc)
    if err.code == "unavailable":
        return CliError(f"cannot reach the coordinator at {server}: {err.message}", 6)
    return CliError(f"{what}: {err.message}", EXIT_CODES.get(err.code, 1))


def systemd_present() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def will_start_service(args: argparse.Namespace) -> bool:
    """Whether this install will install and start convoy-agent.service (root, under systemd)."""
    return not args.no_service and systemd_present() and os.geteuid() == 0


def agent_command(state_dir: Path) -> list[str]:
    """How to start the daemon for this state dir, with the same Python as this install."""
    return [*systemd_units.convoy_command(), "agent", "run", "--state-dir", str(state_dir)]


def unit_text(state_dir: Path) -> str:
    """The shipped, hardened agent unit (agent/systemd/convoy-agent.service) for this state dir."""
    return systemd_units.render(systemd_units.AGENT, agent_command(state_dir))


def _systemctl(*args: str) -> None:
    import subprocess

    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise StepFailed(f"systemctl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")


class Installer:
    """The local install steps after a successful Enroll."""

    def __init__(self, args: argparse.Namespace, state: StateDir, log: InstallLog) -> None:
        self.args = args
        self.state = state
        self.log = log
        self.written: list[Path] = []
        self.service_note = ""

    def step(self, message: str, fn: Callable[[], None]) -> None:
        self.log.add(message)
        try:
            fn()
        except StepFailed as exc:
            raise StepFailed(f"{message.rstrip('.')} failed - {exc}") from exc
        except OSError as exc:
            reason = exc.strerror or str(exc)
            where = f": {exc.filename}" if exc.filename else ""
            raise StepFailed(f"{message.rstrip('.')} failed - {reason}{where}") from exc

    def run(self, resp: pb.EnrollResponse, machine_id: str, tls: transport.ClientTLS,
            device_key: bytes | None) -> None:
        servers = server_list(self.args)
        identity = AgentIdentity(server=servers[0], servers=servers, device_id=resp.device_id,
                                 client_id=resp.client_id, machine_id=machine_id, agent_version=AGENT_VERSION,
                                 tags=list(self.args.tag), site=self.args.site, insecure=not tls.secure)
        cert = resp.device_certificate.encode() if resp.device_certificate and device_key else None
        if cert is not None:
            from agent.device_key import DeviceKey

            identity.cert_not_before, identity.cert_not_after = DeviceKey.validity(cert)

        def save_state() -> None:
            self.written += [self.state.credential_path, self.state.identity_path]
            if tls.ca_pem is not None:
                self.written.append(self.state.ca_path)
            if cert is not None:
                self.written += [self.state.device_key_path, self.state.device_cert_path]
            self.state.save(identity, resp.credential, tls.ca_pem, device_key if cert else None, cert)

        pinned = "" if tls.ca_pem is None else ", pinned CA in ca.pem"
        if cert is not None:
            pinned += ", device key in device.key (0600) and its certificate in device.pem"
        self.step(f"Writing agent state to {self.state.root} (credential mode 0600{pinned})...", save_state)

        keys = list(getattr(self.args, "trust_keys", []) or [])
        if keys:
            def save_trust() -> None:
                self.written.append(trust_set.path_of(self.state))
                trust_set.save(self.state, trust_set.TrustSet(client_id=resp.client_id, serial=0, keys=tuple(keys)))

            self.step(f"Pinning {len(keys)} signer key(s) in {trust_set.path_of(self.state)}: only work they "
                      "signed will run...", save_trust)
        elif trust_set.path_of(self.state).exists():
            self.log.add(f"Keeping the signer keys pinned in {trust_set.path_of(self.state)}")

        windows = [w.strip() for w in self.args.maintenance_window if w.strip()]
        if windows:
            def save_windows() -> None:
                self.written.append(self.state.windows_path)
                atomic_write(self.state.windows_path, ("\n".join(windows) + "\n").encode(), mode=0o644)

            self.step(f"Writing {len(windows)} maintenance window(s) to {self.state.windows_path}...", save_windows)

        run_cmd = " ".join(agent_command(self.state.root))
        if self.args.no_service:
            self.log.add("Skipping service installation (--no-service)")
            self.service_note = f"start the agent with: {run_cmd}"
        elif not will_start_service(self.args):
            why = "systemd is not running" if not systemd_present() else "not running as root"
            self.log.add(f"Skipping service installation: {why}")
            self.service_note = f"start the agent with: {run_cmd}"
        else:
            def write_unit() -> None:
                self.written.append(SYSTEMD_UNIT)
                atomic_write(SYSTEMD_UNIT, unit_text(self.state.root).encode(), mode=0o644)

            self.step(f"Installing systemd unit {SYSTEMD_UNIT}...", write_unit)
            self.step("Reloading systemd...", lambda: _systemctl("daemon-reload"))
            self.step("Enabling and starting convoy-agent.service...",
                      lambda: _systemctl("enable", "--now", SYSTEMD_UNIT.name))
            self.service_note = "the agent runs as convoy-agent.service"

    def undo(self) -> None:
        """Remove what this run wrote, so a failed install leaves no half-enrolled state dir."""
        for path in reversed(self.written):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.log.add(f"Could not remove {path}: {exc.strerror or exc}")


def _report(stub: Any, credential: str, enrollment_id: str, success: bool, lines: list[str], server: str) -> str:
    req = pb.ReportEnrollmentRequest(enrollment_id=enrollment_id, success=success, log_lines=lines)
    metadata = [("authorization", f"Bearer {credential}")]
    for attempt in range(5):
        try:
            return str(stub.ReportEnrollment(req, metadata=metadata, timeout=RPC_TIMEOUT).status)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == 4:
                raise _rpc_error(exc, server, "could not report the enrollment outcome") from None
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def server_list(args: argparse.Namespace) -> list[str]:
    """`--server`'s addresses (exit 2 naming the bad one)."""
    try:
        return parse_servers(args.server)
    except ValueError as exc:
        raise CliError(f"--server: {exc}", 2) from None


def install_trust(args: argparse.Namespace) -> transport.ClientTLS:
    """The coordinator proved against `--ca-fingerprint` or `--ca`, or plaintext for `--insecure`.
    Exit 7 (nothing sent, nothing written) when it cannot be trusted. With several addresses the
    first reachable one is checked (an unreachable one is skipped, an untrusted one is fatal)."""
    servers = server_list(args)
    for i, server in enumerate(servers):
        try:
            return _trust(args, server)
        except CliError as exc:
            if exc.exit_code != 6 or i == len(servers) - 1:
                raise
            print(f"warning: {exc}; trying {servers[i + 1]}", file=sys.stderr)
    raise AssertionError("unreachable")


def _trust(args: argparse.Namespace, server: str) -> transport.ClientTLS:
    fingerprint, ca_file, insecure = args.ca_fingerprint, args.ca, args.insecure
    if insecure:
        if fingerprint or ca_file:
            raise CliError("--insecure cannot be combined with --ca-fingerprint or --ca", 2)
        return transport.PLAINTEXT
    if not fingerprint and not ca_file:
        raise CliError("pin the coordinator: pass --ca-fingerprint sha256:... (printed by `convoy tokens create`), "
                       "or --ca FILE, or --insecure for a plaintext coordinator on loopback", 2)
    try:
        want = pins.parse_fingerprint(fingerprint) if fingerprint else ""
    except ValueError as exc:
        raise CliError(f"--ca-fingerprint: {exc}", 2) from None
    try:
        if ca_file:
            try:
                pem = Path(ca_file).read_bytes()
                have = pins.bundle_fingerprint(pem)
            except OSError as exc:
                raise CliError(f"cannot read --ca {ca_file}: {exc.strerror or exc}", 2) from None
            except ValueError:
                raise CliError(f"--ca {ca_file} holds no PEM certificate", 2) from None
            if want and have != want:
                raise CliError(f"--ca {ca_file} has fingerprint {have}, not {want}", EXIT_UNTRUSTED)
            transport.verify_server(server, pem)
            return transport.ClientTLS(ca_pem=pem)
        return transport.ClientTLS(ca_pem=transport.discover_ca(server, want))
    except transport.TrustError as exc:
        if str(exc).startswith("cannot reach"):
            raise CliError(str(exc), 6) from None
        raise CliError(str(exc), EXIT_UNTRUSTED) from None


def _proof(state: StateDir, machine_id: str) -> list[tuple[str, str]]:
    """The previous device credential of this machine, if this state dir holds one."""
    try:
        identity, credential = state.load()
    except (FileNotFoundError, ValueError, TypeError, OSError):
        return []
    if identity.machine_id != machine_id or not credential:
        return []
    return [("authorization", f"Bearer {credential}")]


def _device_key(state: StateDir, machine_id: str, request: pb.EnrollRequest) -> bytes:
    """Make the new device key and put its certificate request in `request`, signed over by the
    previous key of this machine when the state dir holds one. Returns the new key (PEM)."""
    from agent.device_key import DeviceKey, DeviceKeyError

    key = DeviceKey.generate()
    request.csr = key.csr(machine_id)
    try:
        identity, _ = state.load()
        old = DeviceKey(state.device_key_path.read_bytes()) if identity.machine_id == machine_id else None
    except (FileNotFoundError, ValueError, TypeError, OSError):
        old = None
    if old is not None:
        request.proof_time = int(time.time())
        try:
            request.key_proof = old.sign(device_identity.proof_message(machine_id, request.csr, request.proof_time))
        except DeviceKeyError as exc:
            print(f"warning: {state.device_key_path}: {exc}; enrolling without a key proof", file=sys.stderr)
    return key.pem


def _enroll(servers: list[str], tls: transport.ClientTLS, request: pb.EnrollRequest,
            proof: list[tuple[str, str]]) -> tuple[Any, pb.EnrollResponse, str]:
    """Enroll through the first address that answers (UNAVAILABLE: the next one)."""
    for i, server in enumerate(servers):
        stub = agent_pb2_grpc.AgentServiceStub(transport.sync_channel(server, tls))
        try:
            return stub, stub.Enroll(request, metadata=proof, timeout=RPC_TIMEOUT), server
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE and i < len(servers) - 1:
                print(f"warning: cannot reach the coordinator at {server}; trying {servers[i + 1]}", file=sys.stderr)
                continue
            raise _rpc_error(exc, server, "enrollment refused") from None
    raise AssertionError("unreachable")


def cli_install(args: argparse.Namespace) -> int:
    """Enroll, install, report; print the result. Exit 0 only if the record ends `success`."""
    as_json = getattr(args, "output", "table") == "json"
    machine_id = (args.machine_id or facts_mod.machine_id() or "").strip()
    if not machine_id:
        raise CliError("no machine id found (/etc/machine-id is missing): pass --machine-id", 2)
    facts = facts_mod.gather()
    state = StateDir(args.state_dir)
    try:
        args.trust_keys = trust_set.parse_keys(list(getattr(args, "trust_key", []) or []))
    except trust_set.TrustError as exc:
        raise CliError(str(exc), 2) from None
    tls = install_trust(args)

    request = pb.EnrollRequest(token=args.token, machine_id=machine_id, facts=facts_message(facts),
                               agent_version=AGENT_VERSION, tags=list(args.tag), site=args.site)
    device_key = _device_key(state, machine_id, request) if tls.secure else None
    # One call per install (docs/enrollment.md): with no service to start, all that is left after
    # Enroll is writing the state it returns, so the success report goes with Enroll; a step that
    # fails after it is still reported (`error`, a correction the coordinator accepts).
    request.report_success = not will_start_service(args)
    stub, resp, server = _enroll(server_list(args), tls, request, _proof(state, machine_id))
    if resp.device_certificate and device_key:
        # From here on this device's calls present its certificate, on the agent port.
        agent_tls = transport.ClientTLS(ca_pem=tls.ca_pem, use_system_roots=tls.use_system_roots,
                                        client_key_pem=device_key, client_cert_pem=resp.device_certificate.encode())
        server = device_identity.agent_address(server)
        stub = agent_pb2_grpc.AgentServiceStub(transport.sync_channel(server, agent_tls))

    log = InstallLog(echo=not as_json)
    log.add("Starting deployment...")
    log.add(f"Enrolled as device {resp.device_id} (client {resp.client_id}, machine id {machine_id})")
    installer = Installer(args, state, log)
    try:
        installer.run(resp, machine_id, tls, device_key)
    except StepFailed as exc:
        log.add(str(exc))
        installer.undo()
        log.add("Deployment aborted")
        _report(stub, resp.credential, resp.enrollment_id, False, log.lines, server)
        raise CliError(f"install failed: {exc}", 1) from None
    log.add("Deployment complete")
    if not resp.reported:  # a service was started, or the coordinator predates report_success
        _report(stub, resp.credential, resp.enrollment_id, True, log.lines, server)

    result = {"device_id": resp.device_id, "client_id": resp.client_id, "enrollment_id": resp.enrollment_id,
              "state_dir": str(state.root)}
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(f"enrolled device {resp.device_id} (enrollment {resp.enrollment_id}); state in {state.root}")
        print(installer.service_note)
    return 0
