"""The `convoy` command's exit codes and its one-line error, shared by the admin CLI (cli/) and
the agent's commands (agent/), which must not import the admin CLI.

Exit codes: 0 ok, 2 invalid argument, 3 not authenticated or not allowed, 4 not found,
5 conflict, 6 coordinator unreachable, 7 the coordinator's certificate is not trusted, 1 anything else.
"""

from __future__ import annotations

EXIT_CODES = {
    "invalid_argument": 2, "retries_exhausted": 2, "unauthenticated": 3, "forbidden": 3,
    "not_found": 4, "conflict": 5, "unavailable": 6,
}
EXIT_UNTRUSTED = 7


class CliError(Exception):
    """A command failed: `message` is printed as one line, the process exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
