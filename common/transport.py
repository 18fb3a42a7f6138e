"""Every gRPC channel and server is made here, and every client decides here how it trusts the
coordinator: TLS with a CA it was given (or pinned by fingerprint), or plaintext only when told.

Keepalive settings are chosen together: clients ping every 30 s when idle, and the server
accepts pings that far apart (and without calls in flight), so neither side cuts the other off
with GOAWAY "too_many_pings".

Pinning (`discover_ca`) works as `kubeadm join --discovery-token-ca-cert-hash` does: open one
TLS connection without trusting anything, take the certificates the server presents, keep the
one whose SHA-256 matches the pin, then open a second connection that must verify against that
certificate (chain and host name). Nothing is sent on the first connection, so a server that
fails the second check has learned nothing but that someone connected.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import grpc.aio

from common import pins

if TYPE_CHECKING:
    import ssl
# Python's ssl module is imported only where a handshake is made by hand (pinning at install):
# the agent daemon's channels use gRPC's own TLS, and `agent run` keeps ssl out of its process
# (about 5 MB of idle RSS, cli/main.py).

CLIENT_KEEPALIVE_MS = 30_000
MAX_MESSAGE = 16 * 1024 * 1024
# A device or an operator sends small messages, except artifact uploads, which stream chunks of
# at most 1 MiB: 4 MiB inbound leaves room and refuses a 16 MiB blob before it is parsed.
MAX_SERVER_RECEIVE = 4 * 1024 * 1024
MAX_STREAMS_PER_CONNECTION = 1000

CLIENT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", CLIENT_KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    # gRPC's own connection backoff (1 s growing ×1.6 to 120 s) would otherwise sit under the
    # agent's: a channel in its backoff fails every call at once with UNAVAILABLE, so after a
    # coordinator restart of a few seconds the channel only dialled again 5-25 s later. The
    # agent's jittered backoff (agent/daemon.py) is the policy; the channel redials within 1 s.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", CLIENT_KEEPALIVE_MS // 2),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.max_receive_message_length", MAX_SERVER_RECEIVE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
    # A stream gRPC received but the coordinator has not picked up yet is cancelled after 30 s by
    # default: in a reconnect storm of 10,000 agents that was most of the agents' CANCELLED (and
    # INTERNAL, the same cancel seen by a write, grpc/grpc#36066) errors. Waiting is better.
    ("grpc.server_max_unrequested_time_in_server", 300),
]


_ENCODING_DER = 2  # _ssl.ENCODING_DER (a private module); checked in tests/unit/test_trust.py


class TrustError(Exception):
    """The coordinator's certificate cannot be trusted (or cannot be fetched to be checked)."""


@dataclass(frozen=True)
class ClientTLS:
    """How a client checks the coordinator it talks to."""

    ca_pem: bytes | None
    """The CA certificate(s), PEM, that the server's chain must verify against; None = plaintext."""
    use_system_roots: bool = False
    """With no `ca_pem`: verify against the system's trusted roots instead of going plaintext."""
    client_key_pem: bytes | None = None
    """The device key (PEM) an agent presents with `client_cert_pem` (mutual TLS); None: none."""
    client_cert_pem: bytes | None = None
    """The device certificate (PEM) the coordinator signed for `client_key_pem`."""

    @property
    def secure(self) -> bool:
        return self.ca_pem is not None or self.use_system_roots


PLAINTEXT = ClientTLS(ca_pem=None)
"""No TLS: only for a coordinator started with `--insecure` on loopback."""
SYSTEM_ROOTS = ClientTLS(ca_pem=None, use_system_roots=True)


@dataclass(frozen=True)
class ServerTLS:
    """The coordinator's certificate chain (leaf first, then its CA) and private key, PEM."""

    cert_chain_pem: bytes
    key_pem: bytes


def _credentials(tls: ClientTLS) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=tls.ca_pem, private_key=tls.client_key_pem,
                                        certificate_chain=tls.client_cert_pem)


def aio_channel(target: str, tls: ClientTLS, *,
                extra_options: Sequence[tuple[str, int | str]] = ()) -> grpc.aio.Channel:
    """`extra_options`: e.g. `("grpc.use_local_subchannel_pool", 1)` for a TCP connection of the
    channel's own (channels with the same target and options otherwise share one), or
    `("grpc.ssl_target_name_override", name)` to dial an IP the certificate names as `name`."""
    options: list[tuple[str, int | str]] = [*CLIENT_OPTIONS, *extra_options]
    if not tls.secure:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, _credentials(tls), options=options)


def sync_channel(target: str, tls: ClientTLS, *,
                 extra_options: Sequence[tuple[str, int | str]] = ()) -> grpc.Channel:
    options: list[tuple[str, int | str]] = [*CLIENT_OPTIONS, *extra_options]
    if not tls.secure:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, _credentials(tls), options=options)


def aio_server(interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> grpc.aio.Server:
    return grpc.aio.server(options=SERVER_OPTIONS, interceptors=list(interceptors))


def bind(server: grpc.aio.Server, address: str, tls: ServerTLS | None) -> int:
    """Bind `address` (port 0 picks a free one), with TLS unless `tls` is None; return the port."""
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        creds = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_chain_pem)])
        port = server.add_secure_port(address, creds)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port


def bind_agent_port(server: grpc.aio.Server, address: str, tls: ServerTLS, client_ca_pem: bytes) -> int:
    """Bind the agent port: TLS that requires a client certificate signed by `client_ca_pem`
    (mutual TLS; common/device_identity.py says why this is a port of its own)."""
    creds = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_chain_pem)], root_certificates=client_ca_pem,
                                        require_client_auth=True)
    port = server.add_secure_port(address, creds)
    if port == 0:
        raise OSError(f"cannot listen on {address} (the agent port)")
    return port


def free_port_pair(host: str) -> int:
    """A port p such that p and p + 1 are both free on `host` now (the gRPC and agent ports)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(family) as first:
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket(family) as second:
                try:
                    second.bind((host, port + 1))
                except OSError:
                    continue
                return port
    raise OSError(f"no two consecutive free ports on {host}")


# --- pinning ------------------------------------------------------------------------------

def split_target(target: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port)."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise TrustError(f"bad coordinator address {target!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _handshake(target: str, ctx: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    import ssl

    host, port = split_target(target)
    ctx.set_alpn_protocols(["h2"])
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise TrustError(f"cannot reach the coordinator at {target}: {exc.strerror or exc}") from exc
    try:
        return ctx.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        raise TrustError(f"the coordinator at {target} is not trusted: {exc.verify_message}") from exc
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        raise TrustError(f"TLS handshake with {target} failed ({exc}); is it serving TLS?") from exc


def presented_chain(target: str, timeout: float = 10.0) -> list[bytes]:
    """The certificates (DER) the server presents, unverified. Only ever compared to a pin."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with _handshake(target, ctx, timeout) as tls:
        getter = getattr(tls, "get_unverified_chain", None)  # public from Python 3.13
        if getter is None:
            getter = tls._sslobj.get_unverified_chain  # type: ignore[attr-defined]  # 3.10-3.12
        chain = getter() or []
        # 3.13 returns DER bytes; earlier versions `_ssl.Certificate` objects.
        return [c if isinstance(c, bytes) else c.public_bytes(_ENCODING_DER) for c in chain]


def verify_server(target: str, ca_pem: bytes, timeout: float = 10.0) -> None:
    """Raise TrustError unless the server's chain verifies against `ca_pem` for its host name."""
    import ssl

    ctx = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    with _handshake(target, ctx, timeout):
        pass


def discover_ca(target: str, fingerprint: str, timeout: float = 10.0) -> bytes:
    """The CA (PEM) named by `fingerprint` (`sha256:<hex>`), fetched from `target` and proved:
    it is among the certificates the server presents, and the server's chain verifies against
    it. TrustError otherwise, naming what was presented."""
    want = pins.parse_fingerprint(fingerprint)
    chain = presented_chain(target, timeout)
    for der in chain:
        if pins.fingerprint(der) == want:
            ca_pem = pins.der_to_pem(der)
            verify_server(target, ca_pem, timeout)
            return ca_pem
    seen = ", ".join(pins.fingerprint(d) for d in chain) or "none"
    raise TrustError(f"the coordinator at {target} is not trusted: it presents no certificate with "
                     f"fingerprint {want} (it presents {seen})")
