"""What dpkg and apt know on a Debian-family host, and convoy's own cache of .deb files.

Everything here runs the real tools (`dpkg-query`, `dpkg-deb`, `apt-cache`, `apt-get`) as argv
lists through `run_command`, so tests put fake executables first on PATH.

Where an older version of a package can come from, for a rollback (`find_version`), in order:
1. convoy's cache, `<state>/packages/debs/`: every .deb convoy installed, and the .deb of a
   version it replaced when apt's archive still held it; at most KEEP_PER_PACKAGE versions per
   package and CACHE_BYTES in all, the oldest going first;
2. apt's archive (`/var/cache/apt/archives`), which `apt-get autoclean` empties of exactly the
   old versions, hence the copy into convoy's cache before an upgrade;
3. the package sources (`apt-cache madison`: versions apt can download; the dpkg status file,
   which lists what is installed, does not count).
Every local .deb is checked with `dpkg-deb -f` (package and version) before it is used.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.installers.base import CommandResult, InstallError, JobContext, run_command

APT_ARCHIVES = Path("/var/cache/apt/archives")
KEEP_PER_PACKAGE = 3
CACHE_BYTES = 512 * 1024 * 1024
QUERY_TIMEOUT = 120.0
# Wait for another dpkg/apt user (unattended-upgrades, a person) instead of failing at once.
APT_OPTIONS = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
               "-o", "DPkg::Lock::Timeout=120"]
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~:_-]*$")


def base_name(name: str) -> str:
    """`libc6:amd64` → `libc6`: dpkg-query lists packages without their architecture."""
    return name.split(":")[0]


def installed_versions(timeout: float = QUERY_TIMEOUT) -> dict[str, str]:
    """Installed packages and versions, from `dpkg-query -W`."""
    result = run_command(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"],
                         timeout=timeout)
    if result.exit_code != 0:
        raise InstallError(f"dpkg-query failed: {result.output.strip()[-200:]}")
    versions: dict[str, str] = {}
    for line in result.output.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].startswith("ii"):
            versions[parts[0]] = parts[1]
    return versions


def describe_changes(before: Mapping[str, str | None], after: Mapping[str, str | None]) -> list[str]:
    lines: list[str] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            lines.append(f"{name}: {old or '(not installed)'} -> {new or '(removed)'}")
    return lines


@dataclass(frozen=True)
class DebFields:
    package: str
    version: str


def deb_fields(path: Path) -> DebFields | None:
    """Package and version of a .deb file, or None if it is not one."""
    probe = run_command(["dpkg-deb", "-f", str(path), "Package", "Version"], timeout=60)
    if probe.exit_code != 0:
        return None
    fields = dict(line.split(": ", 1) for line in probe.output.splitlines() if ": " in line)
    package, version = fields.get("Package", "").strip(), fields.get("Version", "").strip()
    if not package or not version:
        return None
    return DebFields(package, version)


def available_from_sources(name: str, version: str, timeout: float = QUERY_TIMEOUT) -> bool:
    """Whether apt can download `name` at exactly `version` from its configured sources."""
    result = run_command(["apt-cache", "madison", base_name(name)], timeout=timeout)
    if result.exit_code != 0:
        return False
    for line in result.output.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[0] == base_name(name) and parts[1] == version:
            return True
    return False


def _file_version(version: str) -> str:
    """A version as apt spells it in file names: the epoch's ':' is `%3a` (lower case), the only
    character of a Debian version that is quoted."""
    return version.replace(":", "%3a")


def _matches(path: Path, name: str, version: str) -> bool:
    fields = deb_fields(path)
    return fields is not None and fields.package == base_name(name) and fields.version == version


def archived_deb(name: str, version: str) -> Path | None:
    """apt's downloaded copy of `name` `version`, if its archive still holds one."""
    if not APT_ARCHIVES.is_dir():
        return None
    for path in sorted(APT_ARCHIVES.glob(f"{base_name(name)}_{_file_version(version)}_*.deb")):
        if _matches(path, name, version):
            return path
    return None


class DebCache:
    """convoy's bounded cache of .deb files, by package and version."""

    def __init__(self, ctx: JobContext) -> None:
        self.dir = ctx.state.packages_dir / "debs"

    def _path(self, name: str, version: str) -> Path:
        if not _SAFE_PART.match(name) or not _SAFE_PART.match(version):
            raise InstallError(f"cannot cache {name!r} {version!r}: not a Debian package name and version")
        return self.dir / f"{base_name(name)}_{_file_version(version)}.deb"

    def get(self, name: str, version: str) -> Path | None:
        path = self._path(name, version)
        return path if path.is_file() and _matches(path, name, version) else None

    def put(self, source: Path, name: str, version: str) -> Path:
        """Keep a copy of `source` (a .deb of `name` `version`), then trim the cache."""
        target = self._path(name, version)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
        self._trim(keep=target)
        return target

    def _trim(self, keep: Path) -> None:
        files = sorted(self.dir.glob("*.deb"), key=lambda p: p.stat().st_mtime, reverse=True)
        per_package: dict[str, int] = {}
        total = 0
        for path in files:
            package = path.name.split("_", 1)[0]
            per_package[package] = per_package.get(package, 0) + 1
            total += path.stat().st_size
            if path != keep and (per_package[package] > KEEP_PER_PACKAGE or total > CACHE_BYTES):
                total -= path.stat().st_size
                path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Source:
    """Where a version comes from: a local .deb file, or the package sources (`path` None)."""

    name: str
    version: str
    path: Path | None

    def apt_argument(self) -> str:
        """What `apt-get install` takes: a path to a local .deb, or NAME=VERSION."""
        return str(self.path) if self.path is not None else f"{self.name}={self.version}"


def find_version(ctx: JobContext, name: str, version: str) -> Source | None:
    """Where `name` at `version` can be had on this device (see the module's docstring)."""
    local = DebCache(ctx).get(name, version) or archived_deb(name, version)
    if local is not None:
        return Source(name, version, local)
    if available_from_sources(name, version):
        return Source(name, version, None)
    return None


def unrestorable(ctx: JobContext, before: Mapping[str, str | None], after: Mapping[str, str | None]) -> list[str]:
    """After a change: the versions before that a rollback could not get back, as output lines,
    so the operator learns it from the forward job rather than from a failed rollback."""
    return [f"note: a rollback could not restore {name} {old}: that version is not in convoy's cache, "
            "apt's archive or the package sources"
            for name, old in sorted(before.items())
            if old is not None and after.get(name) != old and find_version(ctx, name, old) is None]


def preserve(ctx: JobContext, name: str, version: str) -> None:
    """Before an upgrade: copy apt's .deb of the installed version into convoy's cache, if apt
    still has one, so autoclean cannot take away the version a rollback would need."""
    cache = DebCache(ctx)
    if cache.get(name, version) is not None:
        return
    archived = archived_deb(name, version)
    if archived is not None:
        cache.put(archived, name, version)


def noninteractive(ctx: JobContext) -> dict[str, str]:
    return {**ctx.env(), "DEBIAN_FRONTEND": "noninteractive"}


def apt(ctx: JobContext, *args: str) -> CommandResult:
    return run_command(["apt-get", *APT_OPTIONS, *args], timeout=ctx.timeout, env=noninteractive(ctx))


_REMOVED = re.compile(r"^(?:Remv|Purg) (\S+)", re.MULTILINE)


def simulated_removals(ctx: JobContext, *args: str) -> set[str]:
    """The packages `apt-get install ARGS` would remove, from a simulation (`-s`)."""
    result = apt(ctx, "install", "-s", *args)
    if result.exit_code != 0:
        raise InstallError("apt-get cannot plan the restore: "
                           + (result.output.strip().splitlines() or ["no output"])[-1][:200])
    return {base_name(m) for m in _REMOVED.findall(result.output)}
