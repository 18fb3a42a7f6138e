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
                                               ("esc", "symlink", "d/up/..")])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchive, match="'esc' is a symlink escaping"):
        safe_extract(arc, dest)
    # and writing through it is refused before anything is written
    arc = make_tar(tmp_path / "chain2.tar.gz", [("d", "dir", None), ("d/up", "symlink", ".."),
                                                ("esc", "symlink", "d/up/.."), ("esc/pwned", "file", "x")])
    with pytest.raises(UnsafeArchive, match="'esc/pwned' lies under the symlink member 'esc'"):
        safe_extract(arc, tmp_path / "out2")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out2" / "esc").exists()


def test_writing_through_an_extracted_symlink_is_refused(tmp_path: Path) -> None:
    # Even a link that stays inside: a tree archived by tar never has members under a symlink.
    arc = make_tar(tmp_path / "via.tar.gz", [("d", "dir", None), ("d/in", "symlink", "."),
                                             ("d/in/x.txt", "file", "fine")])
    with pytest.raises(UnsafeArchive, match="'d/in/x.txt' lies under the symlink member 'd/in'"):
        safe_extract(arc, tmp_path / "out")
    assert not (tmp_path / "out" / "d" / "x.txt").exists()
    arc = make_tar(tmp_path / "dup.tar.gz", [("a", "file", "x"), ("a", "symlink", "/etc")])
    with pytest.raises(UnsafeArchive, match="absolute path"):
        safe_extract(arc, tmp_path / "out2")
    arc = make_tar(tmp_path / "dup2.tar.gz", [("a", "dir", None), ("a", "symlink", "b")])
    with pytest.raises(UnsafeArchive, match="sharing its name"):
        safe_extract(arc, tmp_path / "out3")
    arc = make_tar(tmp_path / "hl.tar.gz", [("s", "symlink", "x"), ("h", "hardlink", "s")])
    with pytest.raises(UnsafeArchive, match="not an earlier regular file"):
        safe_extract(arc, tmp_path / "out4")


def test_the_path_max_symlink_trick_is_refused(tmp_path: Path) -> None:
    """CVE-2025-4517: nested directories with long names and one-letter symlinks to them make a
    path longer than PATH_MAX, where os.path.realpath stops resolving and reports "inside"; the
    last link then climbs out. Python 3.11.7's own `data` filter lets it through."""
    comp = "d" * 247
    steps = "abcdefghijklmnop"
    members: list[tuple[str, str, object]] = []
    path = ""
    for step in steps:
        members.append((f"{path}{comp}", "dir", None))
        members.append((f"{path}{step}", "symlink", comp))
        path = f"{path}{comp}/"
    link = "/".join(steps) + "/" + "l" * 254
    members.append((link, "symlink", "../" * len(steps)))
    members.append(("escape", "symlink", link + "/../../.."))
    members.append(("escape/pwned", "file", "owned"))
    outside = tmp_path / "deep" / "deeper" / "deepest"
    arc = make_tar(tmp_path / "pathmax.tar.gz", members)
    dest = outside / "out"
    with pytest.raises(UnsafeArchive):
        safe_extract(arc, dest)
    assert not any(p.name == "pwned" for p in tmp_path.rglob("pwned"))
    # without the final write the links alone are refused too, after being checked on disk
    arc = make_tar(tmp_path / "pathmax2.tar.gz", members[:-1])
    with pytest.raises(UnsafeArchive):
        safe_extract(arc, tmp_path / "out2")


def test_not_an_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar.gz"
    bogus.write_bytes(b"not a tarball")
    with pytest.raises(UnsafeArchive, match="not a readable tar archive"):
        safe_extract(bogus, tmp_path / "out")
