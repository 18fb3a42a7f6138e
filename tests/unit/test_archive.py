"""Safe extraction refuses crafted archives, naming the offending member, and writes nothing outside."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from agent.archive import UnsafeArchive, safe_extract


def make_tar(path: Path, members: list[tuple[str, str, object]]) -> Path:
    """members: (name, kind, data) with kind file|dir|symlink|hardlink|chr|fifo."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                raw = str(data).encode()
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
                continue
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info)
    return path


def test_a_normal_archive_extracts(tmp_path: Path) -> None:
    arc = make_tar(tmp_path / "ok.tar.gz", [("pkg", "dir", None), ("pkg/a.txt", "file", "hello"),
                                            ("pkg/link", "symlink", "a.txt"), ("pkg/hard", "hardlink", "pkg/a.txt")])
    dest = tmp_path / "out"
    names = safe_extract(arc, dest)
    assert names == ["pkg", "pkg/a.txt", "pkg/link", "pkg/hard"]
    assert (dest / "pkg/link").read_text() == "hello" and (dest / "pkg/hard").read_text() == "hello"


@pytest.mark.parametrize(("members", "message"), [
    ([("../evil.txt", "file", "x")], "'../evil.txt' contains a '..' component"),
    ([("pkg/../../evil.txt", "file", "x")], "contains a '..' component"),
    ([("/tmp/evil.txt", "file", "x")], "'/tmp/evil.txt' has an absolute path"),
    ([("link", "symlink", "/etc/passwd")], "'link' is a symlink to an absolute path"),
    ([("link", "symlink", "../outside")], "'link' is a symlink escaping the destination"),
    ([("d", "dir", None), ("d/link", "symlink", "../../outside")], "'d/link' is a symlink escaping"),
    ([("hard", "hardlink", "../outside")], "'hard' is a hard link escaping"),
    ([("hard", "hardlink", "/etc/passwd")], "'hard' is a hard link escaping"),
    ([("null", "chr", None)], "'null' is a device file"),
    ([("pipe", "fifo", None)], "'pipe' is a device file or FIFO"),
])
def test_malicious_members_are_refused(tmp_path: Path, members: list[tuple[str, str, object]], message: str) -> None:
    arc = make_tar(tmp_path / "bad.tar.gz", members)
    dest = tmp_path / "sub" / "out"
    with pytest.raises(UnsafeArchive, match=message.replace("(", r"\(").replace(")", r"\)")):
        safe_extract(arc, dest)
    assert not (tmp_path / "sub" / "evil.txt").exists() and not (tmp_path / "sub" / "outside").exists()


def test_a_chain_of_links_cannot_escape(tmp_path: Path) -> None:
    # Each link alone stays inside; followed through one another, "d/up/.." would leave.
    arc = make_tar(tmp_path / "chain.tar.gz", [("d", "dir", None), ("d/up", "symlink", ".."),
                                               ("esc", "symlink", "d/up/.."), ("esc/pwned", "file", "x")])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchive, match="'esc' is a symlink escaping"):
        safe_extract(arc, dest)
    assert not (tmp_path / "pwned").exists()


def test_writing_through_an_extracted_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    arc = make_tar(tmp_path / "via.tar.gz", [("d", "dir", None), ("d/in", "symlink", "."),
                                             ("d/in/x.txt", "file", "fine")])
    names = safe_extract(arc, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "x.txt").read_text() == "fine" and names[-1] == "d/in/x.txt"


def test_not_an_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar.gz"
    bogus.write_bytes(b"not a tarball")
    with pytest.raises(UnsafeArchive, match="not a readable tar archive"):
        safe_extract(bogus, tmp_path / "out")
