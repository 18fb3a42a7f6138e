"""Generate the Python gRPC code for proto/convoy/v1 into common/convoy/v1 (`make proto`).

protoc writes absolute imports (`from convoy.v1 import types_pb2`); they are rewritten to
`common.convoy.v1` so the generated code lives inside the `common` package (docs/coordinator.md: proto/ is the
contract, common/ holds what both programs share).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "common"
_IMPORT = re.compile(r"^from convoy\.v1 import", re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into `out_dir` and return the generated files."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "convoy" / "v1").glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    generated = sorted((out_dir / "convoy" / "v1").glob("*_pb2*.py*"))
    for path in generated:
        path.write_text(_IMPORT.sub("from common.convoy.v1 import", path.read_text()))
    for pkg in (out_dir / "convoy", out_dir / "convoy" / "v1"):
        (pkg / "__init__.py").write_text("")
    return generated


def check() -> list[str]:
    """Names of generated files that differ from what protoc would write now."""
    stale = []
    with tempfile.TemporaryDirectory() as tmp:
        for fresh in generate(Path(tmp)):
            committed = OUT_DIR / "convoy" / "v1" / fresh.name
            if not committed.exists() or committed.read_text() != fresh.read_text():
                stale.append(fresh.name)
    return stale


if __name__ == "__main__":
    if "--check" in sys.argv:
        bad = check()
        print("stale: " + ", ".join(bad) if bad else "generated code is up to date")
        sys.exit(1 if bad else 0)
    for p in generate(OUT_DIR):
        print(p.relative_to(ROOT))
