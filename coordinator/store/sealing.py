"""Encryption at rest for secret script parameters (docs/security.md, "Secret parameters").

The key file is `<data dir>/secrets.key` (0600), made on first start: one Fernet key a line, the
first encrypts, every line decrypts (rotation: put a new key on top, restart; see the docs).
Replicas sharing one store need the same file. A sealed value is stored as
`sealed:v1:<commitment>|<Fernet token>`: the commitment (common/secret_params.py) is what
manifests and the job digest show, the token is the value, encrypted.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from common import secret_params

KEY_FILE = "secrets.key"
PREFIX = "sealed:v1:"


class SealError(Exception):
    """A sealed value that this coordinator's keys cannot open (a missing or wrong key file)."""


class Sealer:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SealError("no secrets key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, value: str) -> str:
        token = self._fernet.encrypt(value.encode("utf-8", "surrogatepass")).decode("ascii")
        return f"{PREFIX}{secret_params.commit(value)}|{token}"

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8", "surrogatepass")
        except (InvalidToken, ValueError):
            raise SealError("a secret parameter cannot be decrypted with this coordinator's secrets.key "
                            "(a replica with another key file, or the key was lost)") from None


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def split(sealed: str) -> tuple[str, str]:
    """(commitment, Fernet token) of a sealed value."""
    commitment, _, token = sealed[len(PREFIX):].partition("|")
    return commitment, token


def open_sealer(data_dir: str | Path) -> Sealer:
    """The data dir's key file, made (0600, never overwritten) when missing."""
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, Fernet.generate_key() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    os.chmod(path, 0o600)
    keys = [line.strip().encode("ascii") for line in path.read_text().splitlines() if line.strip()]
    try:
        return Sealer(keys)
    except (SealError, ValueError) as exc:
        raise SealError(f"{path}: not a list of Fernet keys ({exc})") from None
