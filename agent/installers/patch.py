"""The patch installer: OS package updates through apt on Debian-family hosts.

`{"packages": [{"name", "version"}], "action": "install"|"rollback", "revertsDeploymentId"}`.

Install: a `latest` version is `apt-get install -y --only-upgrade NAME` (upgrades an installed
package, never adds one); an exact version is `apt-get install -y --allow-downgrades
NAME=VERSION`. Before anything changes, the installed version of every named package is
recorded (agent/installers/prestate.py) and the .deb of that version is copied into convoy's
cache if apt still holds it; when apt is done, every package it changed (dependencies too) is
added with its version before and after. What changed is reported by comparing `dpkg-query -W`
before and after; an exact version that did not end up installed fails the job.

Rollback (`uninstall` is the old name of the action, accepted) puts the recorded versions back
in one apt transaction: a downgrade to the version before, removal only of a package that was
not installed before. It changes nothing and fails with a one-line reason when a version cannot
be had, when a package changed since the deployment left it, or when apt would remove anything
else.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from typing import Any

from agent.installers.base import InstallError, JobContext, Outcome, outcome_of
from agent.installers.debian import (
    apt,
    base_name,
    describe_changes,
    find_version,
    installed_versions,
    preserve,
    simulated_removals,
    unrestorable,
)
from agent.installers.prestate import PreState, PreStateStore, reverted_deployment

# Debian policy names (optionally arch-qualified) and versions; a leading '-' is never allowed,
# so nothing in the payload can turn into an option of apt-get.
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~:-]*$")
ROLLBACK_ACTIONS = ("rollback", "uninstall")


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


def _ready() -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        raise InstallError("apt-get is not available: patches install only on Debian-family hosts")
    if os.geteuid() != 0:
        raise InstallError("patching needs root: the agent runs as an unprivileged user")


def run(ctx: JobContext) -> Outcome:
    action = str(ctx.payload.get("action") or ("rollback" if ctx.rollback else "install"))
    if action not in ("install", *ROLLBACK_ACTIONS):
        raise InstallError(f"unknown patch action {action!r} (install, rollback)")
    packages = parse_packages(ctx.payload)
    if action in ROLLBACK_ACTIONS:
        return rollback(ctx)
    return install(ctx, packages)


def install(ctx: JobContext, packages: list[tuple[str, str]]) -> Outcome:
    _ready()
    store = PreStateStore(ctx.state)
    before = installed_versions()
    record, _ = store.record_before(ctx.deployment_id, "patch", ctx.job_id,
                                    {base_name(n): before.get(base_name(n)) for n, _ in packages})
    for name, _ in packages:
        if base_name(name) in before:
            preserve(ctx, name, before[base_name(name)])
    outputs: list[str] = []
    outcome: Outcome | None = None
    try:
        # Fresh lists so "latest" means latest; an offline mirror is reported, not fatal.
        update = apt(ctx, "update", "-q")
        outputs.append(update.output)
        latest = [name for name, version in packages if version == "latest"]
        exact = [f"{name}={version}" for name, version in packages if version != "latest"]
        for args in (["--only-upgrade", *latest] if latest else None,
                     ["--allow-downgrades", *exact] if exact else None):
            if args is None:
                continue
            result = apt(ctx, "install", "-y", *args)
            outputs.append(result.output)
            outcome = outcome_of(result, ctx.timeout, "apt-get install exit code")
            if not outcome.success:
                break
    finally:
        after = installed_versions()
        changed = {name: before.get(name) for name in describe_names(before, after)}
        record = record.merged(changed)
        store.save(record.ended({name: after.get(name) for name in record.before}))
    assert outcome is not None
    changes = describe_changes(before, after)
    summary = "changed:\n  " + "\n  ".join(changes) if changes else "no package changed"
    notes = unrestorable(ctx, record.before, after)  # what a rollback would restore
    if notes:
        summary += "\n" + "\n".join(notes)
    absent = [name for name, version in packages if version == "latest" and base_name(name) not in before]
    if absent:
        summary += "\nnot installed, so not upgraded: " + ", ".join(absent)
    output = summary + "\n\n" + "\n".join(o for o in outputs if o)
    if not outcome.success:
        return Outcome(False, outcome.exit_code, output, outcome.reason)
    wrong = [f"{name} is {after.get(base_name(name), 'not installed')}, wanted {version}"
             for name, version in packages
             if version != "latest" and after.get(base_name(name)) != version]
    if wrong:
        return Outcome(False, outcome.exit_code, output, "; ".join(wrong))
    return Outcome(True, 0, output, "")


def describe_names(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Every package whose version differs between the two snapshots."""
    return sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))


def rollback(ctx: JobContext) -> Outcome:
    """Put back the versions recorded before the reverted deployment (see the module doc)."""
    reverted = reverted_deployment(ctx.payload)
    record = PreStateStore(ctx.state).require(reverted, "patch")
    _ready()
    now = installed_versions()
    args, removals, problems, plan = _plan(ctx, record, now)
    if problems:
        return Outcome(False, None, "\n".join(problems), "; ".join(problems))
    if not args:
        PreStateStore(ctx.state).save(record.restored())
        return Outcome(True, 0, f"nothing to restore: every package is as it was before deployment {reverted}", "")
    unexpected = simulated_removals(ctx, "--allow-downgrades", *args) - set(removals)
    if unexpected:
        reason = (f"restoring would also remove {', '.join(sorted(unexpected))}, installed before "
                  f"deployment {reverted}; nothing changed")
        return Outcome(False, None, reason, reason)
    result = apt(ctx, "install", "-y", "--allow-downgrades", *args)
    outcome = outcome_of(result, ctx.timeout, "apt-get install exit code")
    after = installed_versions()
    changes = describe_changes(now, after)
    output = ("restored:\n  " + "\n  ".join(changes) if changes else "no package changed") + "\n\n" + result.output
    if not outcome.success:
        return Outcome(False, outcome.exit_code, output, outcome.reason)
    wrong = [f"{name} is {after.get(name) or 'not installed'}, wanted {want or 'not installed'}"
             for name, want in plan.items() if after.get(name) != want]
    if wrong:
        return Outcome(False, outcome.exit_code, output, "; ".join(wrong))
    PreStateStore(ctx.state).save(record.restored())
    return Outcome(True, 0, output, "")


def _plan(ctx: JobContext, record: PreState, now: Mapping[str, str]
          ) -> tuple[list[str], list[str], list[str], dict[str, str | None]]:
    """apt arguments, removals, reasons it cannot be done, and the versions wanted."""
    args: list[str] = []
    removals: list[str] = []
    problems: list[str] = []
    plan: dict[str, str | None] = {}
    for name, old in sorted(record.before.items()):
        current = now.get(name)
        if current == old:
            continue
        if name in record.after and current != record.after[name]:
            left = record.after[name] or "it not installed"
            problems.append(f"{name} is {current or 'not installed'}, not {left} as deployment "
                            f"{record.deployment_id} left it: changed since, not touched")
            continue
        if old is None:
            removals.append(name)
            args.append(f"{name}-")  # apt-get install's syntax for "remove this one"
            plan[name] = None
            continue
        source = find_version(ctx, name, old)
        if source is None:
            problems.append(f"cannot restore {name} {old}: that version is not available from the package "
                            f"sources, apt's archive or convoy's cache; left "
                            f"{current + ' installed' if current else 'it not installed'}")
            continue
        args.append(source.apt_argument())
        plan[name] = old
    return args, removals, problems, plan
