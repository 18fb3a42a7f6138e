"""The patch installer: OS package updates through apt on Debian-family hosts.

`{"packages": [{"name", "version"}], "action": "install"|"uninstall"}`. A `latest` version is
`apt-get install -y --only-upgrade NAME` (upgrades an installed package, never adds one); an
exact version is `apt-get install -y --allow-downgrades NAME=VERSION`. Uninstall is
`apt-get remove -y NAME…`. What changed is reported by comparing `dpkg-query -W` before and
after; an exact version that did not end up installed fails the job.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from typing import Any

from agent.installers.base import (
    CommandResult,
    InstallError,
    JobContext,
    Outcome,
    outcome_of,
    run_command,
)

# Debian policy names (optionally arch-qualified) and versions; a leading '-' is never allowed,
# so nothing in the payload can turn into an option of apt-get.
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~:-]*$")
APT_OPTIONS = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]


def parse_packages(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    packages = payload.get("packages")
    if not isinstance(packages, list) or not packages:
        raise InstallError("payload field 'packages' must be a non-empty list")
    out: list[tuple[str, str]] = []
    for item in packages:
        if not isinstance(item, dict):
            raise InstallError("each package must be an object {name, version}")
        name = str(item.get("name") or "")
        version = str(item.get("version") or "latest")
        if not _NAME.match(name):
            raise InstallError(f"invalid package name {name!r}")
        if version != "latest" and not _VERSION.match(version):
            raise InstallError(f"invalid version {version!r} for {name}")
        out.append((name, version))
    return out


def installed_versions(timeout: float = 120) -> dict[str, str]:
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


def describe_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            lines.append(f"{name}: {old or '(not installed)'} -> {new or '(removed)'}")
    return lines


def _ready() -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        raise InstallError("apt-get is not available: patches install only on Debian-family hosts")
    if os.geteuid() != 0:
        raise InstallError("patching needs root: the agent runs as an unprivileged user")


def _apt(ctx: JobContext, *args: str) -> CommandResult:
    env = {**ctx.env(), "DEBIAN_FRONTEND": "noninteractive"}
    return run_command(["apt-get", *APT_OPTIONS, *args], timeout=ctx.timeout, env=env)


def run(ctx: JobContext) -> Outcome:
    action = str(ctx.payload.get("action") or "install")
    if action not in ("install", "uninstall"):
        raise InstallError(f"unknown patch action {action!r} (install, uninstall)")
    packages = parse_packages(ctx.payload)
    _ready()
    before = installed_versions()
    outputs: list[str] = []
    outcome: Outcome | None = None
    if action == "uninstall":
        result = _apt(ctx, "remove", "-y", *[name for name, _ in packages])
        outputs.append(result.output)
        outcome = outcome_of(result, ctx.timeout, "apt-get remove exit code")
    else:
        # Fresh lists so "latest" means latest; an offline mirror is reported, not fatal.
        update = _apt(ctx, "update", "-q")
        outputs.append(update.output)
        latest = [name for name, version in packages if version == "latest"]
        exact = [f"{name}={version}" for name, version in packages if version != "latest"]
        for args in (["--only-upgrade", *latest] if latest else None,
                     ["--allow-downgrades", *exact] if exact else None):
            if args is None:
                continue
            result = _apt(ctx, "install", "-y", *args)
            outputs.append(result.output)
            outcome = outcome_of(result, ctx.timeout, "apt-get install exit code")
            if not outcome.success:
                break
    assert outcome is not None
    after = installed_versions()
    changes = describe_changes(before, after)
    summary = "changed:\n  " + "\n  ".join(changes) if changes else "no package changed"
    absent = [name for name, version in packages
              if action == "install" and version == "latest" and name.split(":")[0] not in before]
    if absent:
        summary += "\nnot installed, so not upgraded: " + ", ".join(absent)
    output = summary + "\n\n" + "\n".join(o for o in outputs if o)
    if not outcome.success:
        return Outcome(False, outcome.exit_code, output, outcome.reason)
    if action == "install":
        wrong = [f"{name} is {after.get(name.split(':')[0], 'not installed')}, wanted {version}"
                 for name, version in packages
                 if version != "latest" and after.get(name.split(":")[0]) != version]
        if wrong:
            return Outcome(False, outcome.exit_code, output, "; ".join(wrong))
    else:
        left = [name for name, _ in packages if name.split(":")[0] in after]
        if left:
            return Outcome(False, outcome.exit_code, output, "still installed: " + ", ".join(left))
    return Outcome(True, 0, output, "")
