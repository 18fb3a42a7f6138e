"""The coordinator addresses an agent knows, and the order it tries them in (docs/replicas.md).

`--server a:7443,b:7443` gives several replicas; a DNS name that resolves to several addresses
counts as one entry per address. The agent holds one stream at a time, on one address: when that
stream cannot be opened or breaks (connection refused, UNAVAILABLE, a replica killed), the next
attempt goes to the next address, so an agent pointed at a dead replica moves to a live one on
its next try instead of retrying the dead one forever. The reconnect delay grows per full round
over the list (agent/daemon.py `connect_loop`): with two addresses and one down, the agent is on
the other after one short, jittered wait.

Names are resolved again at each new round, so DNS changes are seen. An address of a resolved
name is dialled by IP with the name kept as TLS server name and HTTP/2 authority: the pinned CA
and the host name check apply to every address exactly as to the name. A name that does not
resolve (now) is handed to gRPC as it is (its error is the one logged, and the next address is
tried). Only the standard library's socket module is used: the agent stays small.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

Resolver = Callable[[str, int], list[str]]


def parse_servers(text: str | Iterable[str]) -> list[str]:
    """`a:7443,b:7443` (or several such strings) → the addresses in order, duplicates dropped.
    ValueError naming the bad entry for an empty list or an entry that is not HOST:PORT."""
    parts = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for part in parts:
        for raw in part.split(","):
            entry = raw.strip()
            if not entry:
                continue
            host, port = split_address(entry)
            norm = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if norm not in out:
                out.append(norm)
    if not out:
        raise ValueError("no coordinator address given: expected HOST:PORT[,HOST:PORT...]")
    return out


def split_address(entry: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port); ValueError naming `entry` otherwise."""
    host, sep, port = entry.rpartition(":")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"bad coordinator address {entry!r}: write an IPv6 address as [ADDRESS]:PORT")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad coordinator address {entry!r}: expected HOST:PORT (port 1-65535)")
    return host, int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def system_resolver(host: str, port: int) -> list[str]:
    """The distinct addresses `host` resolves to, in the resolver's order (TCP only)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Endpoint:
    target: str
    """What gRPC dials: the configured address, or one resolved IP of it with the port."""
    address: str
    """The address as configured (what logs name)."""
    tls_name: str = ""
    """When dialling a resolved IP: the name the certificate must be valid for."""

    @property
    def channel_options(self) -> list[tuple[str, int | str]]:
        if not self.tls_name:
            return []
        return [("grpc.ssl_target_name_override", self.tls_name), ("grpc.default_authority", self.tls_name)]

    def __str__(self) -> str:
        return self.address if self.target == self.address else f"{self.address} ({self.target})"


def expand(address: str, resolver: Resolver = system_resolver) -> list[Endpoint]:
    """One endpoint per address `address` resolves to (itself for an IP or an unresolvable name)."""
    host, port = split_address(address)
    if _is_ip(host):
        return [Endpoint(address, address)]
    try:
        ips = resolver(host, port)
    except (OSError, UnicodeError):
        return [Endpoint(address, address)]
    if len(ips) <= 1:
        return [Endpoint(address, address)]  # one address: gRPC dials the name itself
    return [Endpoint(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}", address, host) for ip in ips]


class Rotation:
    """The addresses in turn: `current`, `advance()` after a failed or broken stream."""

    def __init__(self, addresses: Sequence[str], resolver: Resolver = system_resolver) -> None:
        if not addresses:
            raise ValueError("no coordinator address given")
        self.addresses = list(addresses)
        self._resolver = resolver
        self._endpoints: list[Endpoint] = []
        self._index = 0
        self._resolve()

    def _resolve(self) -> None:
        self._endpoints = [ep for a in self.addresses for ep in expand(a, self._resolver)]
        self._index = 0

    @property
    def endpoints(self) -> list[Endpoint]:
        return list(self._endpoints)

    def __len__(self) -> int:
        return len(self._endpoints)

    @property
    def current(self) -> Endpoint:
        return self._endpoints[self._index]

    def advance(self) -> Endpoint:
        """The next endpoint; past the last one, names are resolved afresh and the round restarts.
        Resolving may block: the daemon calls this in a thread."""
        self._index += 1
        if self._index >= len(self._endpoints):
            self._resolve()
        return self.current
