"""`convoy completion bash|zsh`: the shell's activation script for tab completion (argcomplete)."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import command


def _completion(args: argparse.Namespace) -> int:
    import argcomplete

    print(argcomplete.shellcode(["convoy"], shell=args.shell))
    return 0


def register(sub: Any) -> None:
    p = command(sub, "completion", "print the shell completion script for convoy",
                "  eval \"$(convoy completion bash)\"            # this shell\n"
                "  convoy completion bash > ~/.local/share/bash-completion/completions/convoy\n"
                "  convoy completion zsh > \"${fpath[1]}/_convoy\"  # or: eval \"$(convoy completion zsh)\" in ~/.zshrc\n"
                "  (deployment ids complete from the coordinator in CONVOY_SERVER / CONVOY_TOKEN)",
                _completion, connection=False, output=False)
    p.add_argument("shell", choices=("bash", "zsh"))
