"""`.deb` artifacts: `dpkg -i`, and a rollback that gives back the version that was there.

Install: the package name and version come from the .deb itself (`dpkg-deb -f`). Before dpkg
runs, the version installed now (or "not installed") is recorded for the deployment
(agent/installers/prestate.py), with convoy's own record entry for that package; the .deb of
that version is copied into convoy's cache if apt still holds it. A successful install keeps the
artifact in convoy's cache (agent/installers/debian.py), so a later rollback to it needs no
download.

Rollback: not installed before → `dpkg -r`; an older version before → `dpkg -i` of its .deb from
convoy's cache or apt's archive, else `apt-get install --allow-downgrades NAME=VERSION` from the
sources; when none has it, the job fails and the package stays as it is. A package that changed
since the deployment left it is not touched.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

from agent.installers import installed
from agent.installers.base import (
    CommandResult,
    InstallError,
    JobContext,
    Outcome,
    outcome_of,
    run_command,
)
from agent.installers.debian import (
    DebCache,
    apt,
    deb_fields,
    find_version,
    installed_versions,
    noninteractive,
    preserve,
    unrestorable,
)
from agent.installers.prestate import PreState, PreStateStore


@dataclass(frozen=True)
class DebDetails:
    """What a .deb deployment's pre-state record holds besides the versions."""

    package: str
    """The package the .deb installs (its `Package` field)."""
    previous_entry: dict[str, Any] | None = None
    """convoy's installed.json entry for the package before, if convoy had installed it."""


LOCK_WAIT = 120.0
LOCK_POLL = 1.0
_LOCKED = ("frontend lock", "status database area is locked", "dpkg status database is locked")


def dpkg(ctx: JobContext, *args: str) -> CommandResult:
    """`dpkg ARGS`, waiting (up to LOCK_WAIT, within the job's timeout) while another dpkg or
    apt holds the lock: unattended-upgrades often does, and dpkg itself does not wait."""
    deadline = time.monotonic() + min(LOCK_WAIT, ctx.timeout)
    while True:
        result = run_command(["dpkg", *args], timeout=ctx.timeout, env=noninteractive(ctx))
        if result.exit_code != 2 or not any(s in result.output for s in _LOCKED) or time.monotonic() > deadline:
            return result
        time.sleep(LOCK_POLL)


def ready() -> None:
    if shutil.which("dpkg") is None:
        raise InstallError("dpkg is not available: .deb packages install only on Debian-family hosts")
    if os.geteuid() != 0:
        raise InstallError("installing a .deb needs root: the agent runs as an unprivileged user")


def install(ctx: JobContext, artifact: dict[str, Any]) -> Outcome:
    ready()
    assert ctx.artifact is not None
    fields = deb_fields(ctx.artifact)
    if fields is None:
        return Outcome(False, None, "", "artifact is not a valid .deb package")
    package = fields.package
    before = installed_versions().get(package)
    store = PreStateStore(ctx.state)
    record, _ = store.record_before(ctx.deployment_id, "deb", ctx.job_id, {package: before},
                                    DebDetails(package, installed.entry(ctx, "deb", package)))
    if before is not None:
        preserve(ctx, package, before)
    result = dpkg(ctx, "-i", str(ctx.artifact))
    outcome = outcome_of(result, ctx.timeout, "dpkg -i exit code")
    after = installed_versions().get(package)
    store.save(record.ended({package: after}))
    if outcome.success:
        DebCache(ctx).put(ctx.artifact, package, fields.version)
        installed.remember(ctx, "deb", package, version=fields.version, sha256=artifact.get("sha256", ""))
    lines = [f"{package}: {before or '(not installed)'} -> {after or '(not installed)'}",
             *unrestorable(ctx, record.before, {package: after})]
    return Outcome(outcome.success, outcome.exit_code, "\n".join(lines) + f"\n\n{outcome.output}", outcome.reason)


def rollback(ctx: JobContext, record: PreState) -> Outcome:
    ready()
    details = record.details_as(DebDetails)
    package = details.package
    old = record.before.get(package)
    now = installed_versions().get(package)
    store = PreStateStore(ctx.state)
    if now == old:
        store.save(record.restored())
        return Outcome(True, 0, f"nothing to restore: {package} is {old or 'not installed'}, as before "
                                f"deployment {record.deployment_id}", "")
    if package in record.after and now != record.after[package]:
        reason = (f"{package} is {now or 'not installed'}, not {record.after[package] or 'not installed'} as "
                  f"deployment {record.deployment_id} left it: changed since, not touched")
        return Outcome(False, None, reason, reason)
    if old is None:
        result = dpkg(ctx, "-r", package)
        outcome = outcome_of(result, ctx.timeout, "dpkg -r exit code")
    else:
        source = find_version(ctx, package, old)
        if source is None:
            reason = (f"cannot restore {package} {old}: that version is not in convoy's package cache, apt's "
                      f"archive or the package sources; left {now + ' installed' if now else 'it not installed'}")
            return Outcome(False, None, reason, reason)
        if source.path is not None:
            result = dpkg(ctx, "-i", str(source.path))
            outcome = outcome_of(result, ctx.timeout, "dpkg -i exit code")
        else:
            result = apt(ctx, "install", "-y", "--allow-downgrades", source.apt_argument())
            outcome = outcome_of(result, ctx.timeout, "apt-get install exit code")
    after = installed_versions().get(package)
    output = f"{package}: {now or '(not installed)'} -> {after or '(not installed)'}\n\n{outcome.output}"
    if not outcome.success:
        return Outcome(False, outcome.exit_code, output, outcome.reason)
    if after != old:
        return Outcome(False, outcome.exit_code, output,
                       f"{package} is {after or 'not installed'} after the restore, wanted {old or 'not installed'}")
    installed.put(ctx, "deb", package, details.previous_entry)
    store.save(record.restored())
    return Outcome(True, 0, output, "")
