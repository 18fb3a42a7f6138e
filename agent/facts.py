"""What the agent knows about its machine: facts (psutil) and a stable machine id.

Kept free of coordinator imports (SQLAlchemy, FastAPI) so the agent stays small.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
# Filesystems that say nothing about the machine's storage.
_PSEUDO_FS = {"tmpfs", "devtmpfs", "squashfs", "overlay", "proc", "sysfs", "cgroup", "cgroup2", "devfs",
              "autofs", "nsfs", "tracefs", "ramfs"}


@dataclass
class Disk:
    mountpoint: str
    fstype: str
    total_bytes: int
    free_bytes: int


@dataclass
class Facts:
    hostname: str
    os: str  # linux | windows | darwin | …
    os_version: str
    arch: str
    cpu_count: int
    memory_bytes: int
    disks: list[Disk] = field(default_factory=list)
    ip_addresses: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _os_version() -> str:
    if sys.platform.startswith("linux"):
        try:
            info = platform.freedesktop_os_release()
            return info.get("PRETTY_NAME") or f"{info.get('NAME', '')} {info.get('VERSION_ID', '')}".strip()
        except OSError:
            return platform.release()
    if sys.platform == "darwin":
        return platform.mac_ver()[0] or platform.release()
    return platform.version() or platform.release()


def _disks() -> list[Disk]:
    out: list[Disk] = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.fstype in _PSEUDO_FS or part.mountpoint in seen:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:  # unreadable or vanished mount
            continue
        seen.add(part.mountpoint)
        out.append(Disk(part.mountpoint, part.fstype, int(usage.total), int(usage.free)))
    return out


def _ip_addresses() -> list[str]:
    ips: list[str] = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                ip = a.address.split("%", 1)[0]  # drop the IPv6 zone id
                if ip not in ips:
                    ips.append(ip)
    return ips


def gather() -> Facts:
    """The machine's facts, as sent in Enroll and in every Connect hello."""
    return Facts(
        hostname=socket.gethostname(),
        os=platform.system().lower(),
        os_version=_os_version(),
        arch=platform.machine().lower(),
        cpu_count=psutil.cpu_count(logical=True) or 0,
        memory_bytes=int(psutil.virtual_memory().total),
        disks=_disks(),
        ip_addresses=_ip_addresses(),
    )


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_id() -> str | None:
    """This machine's stable id: /etc/machine-id (or dbus's copy) on Linux, the hardware UUID on
    macOS, MachineGuid on Windows. None when the platform offers none (pass --machine-id)."""
    for path in MACHINE_ID_FILES:
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value:
            return value
    if sys.platform == "darwin":
        for line in _run(["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"]).splitlines():
            if "IOPlatformUUID" in line:
                return line.split("=", 1)[1].strip().strip('"') or None
    if sys.platform == "win32":
        try:
            import winreg  # type: ignore[import-not-found,unused-ignore]

            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography") as key:  # type: ignore[attr-defined,unused-ignore]
                value, _ = winreg.QueryValueEx(key, "MachineGuid")  # type: ignore[attr-defined,unused-ignore]
                return str(value) or None
        except OSError:
            return None
    return None
