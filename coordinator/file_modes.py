"""The coordinator's files are its own: the data dir 0700, everything in it 0600 (the SQLite
store holds script bodies and parameters; `tls/` holds the CA key).

`private_process()` sets the umask to 077, so every file the coordinator creates from then on
(the SQLite database and its WAL and SHM files, artifact blobs, keys) is 0600 and every
directory 0700; `secure_data_dir()` fixes the modes of a data dir made by an older version.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def private_process() -> None:
    os.umask(0o077)


def secure_data_dir(data_dir: str | Path) -> None:
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    for path in root.iterdir():
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(path, 0o600)
        elif stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(path, 0o700)
