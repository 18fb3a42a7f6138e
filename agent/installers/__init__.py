"""One installer per payload type (docs/protocol.md): each is `run(JobContext) -> Outcome`."""

from __future__ import annotations

from collections.abc import Callable

from agent.installers.base import InstallError, JobContext, Outcome

Installer = Callable[[JobContext], Outcome]


def installer_for(job_type: str) -> Installer:
    """The installer for a payload type; modules load on first use to keep the agent small."""
    if job_type == "script":
        from agent.installers import script

        return script.run
    if job_type == "software":
        from agent.installers import software

        return software.run
    if job_type == "patch":
        from agent.installers import patch

        return patch.run
    if job_type == "policy":
        from agent.installers import policy

        return policy.run
    raise InstallError(f"unknown job type {job_type!r} (script, software, patch, policy)")


__all__ = ["InstallError", "Installer", "JobContext", "Outcome", "installer_for"]
