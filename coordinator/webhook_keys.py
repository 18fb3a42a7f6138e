"""The key that encrypts webhook secrets at rest: `<data-dir>/webhooks.key`, a Fernet key (AES-128
in CBC mode with an HMAC-SHA256 tag, from `cryptography`), made with mode 0600 on first start.

The coordinator must sign every delivery with the webhook's secret, so it stores the secret
reversibly; the key stays beside the CA key in the data dir, never in the database. Replicas on
one database need the same file (docs/replicas.md): each webhook row names the key id that
encrypted it, and a replica delivers only for the webhooks its key opens.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "webhooks.key"


class WebhookKeyError(Exception):
    """The key file is unreadable or holds no Fernet key."""


class WebhookKeys:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise WebhookKeyError(f"{KEY_FILE} does not hold a Fernet key: {exc}") from None
        self.key_id = hashlib.sha256(key.strip()).hexdigest()[:16]
        """What webhook rows store to say which key encrypted them (not secret)."""

    @classmethod
    def load_or_create(cls, data_dir: str | Path) -> WebhookKeys:
        path = Path(data_dir) / KEY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key() + b"\n")
        try:
            return cls(path.read_bytes().strip())
        except OSError as exc:
            raise WebhookKeyError(f"cannot read {path}: {exc.strerror or exc}") from None

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise WebhookKeyError("this webhook's secret does not open with this coordinator's "
                                  f"{KEY_FILE}") from None
