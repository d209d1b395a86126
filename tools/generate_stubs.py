"""Generate the Python protobuf/gRPC stubs (and mypy .pyi stubs) from protos/.

The one documented command:  python tools/generate_stubs.py
Writes absenteeism/v1/*_pb2.py, *_pb2_grpc.py, *.pyi, and a copy of each .proto (the contract ships
in the wheel as package data beside its stubs: importlib.resources.files("absenteeism.v1")).
Never edit those by hand: protos/ is the source.
`--out DIR` writes the same files elsewhere (the freshness test uses it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = Path("absenteeism") / "v1"


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))


def mypy_plugin() -> str:
    # The plugins are console scripts installed next to this interpreter.
    for name in ("protoc-gen-mypy", "protoc-gen-mypy_grpc"):
        if not (Path(sys.executable).parent / name).exists() and not shutil.which(name):
            raise SystemExit(f"{name} not found: pip install mypy-protobuf")
    return str(Path(sys.executable).parent)


def generate(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = mypy_plugin()
    well_known = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={bin_dir}/protoc-gen-mypy",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir}/protoc-gen-mypy_grpc",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package = out_dir / PACKAGE_DIR
    for proto in proto_files():  # the contract itself, shipped with the stubs (package data)
        shutil.copyfile(proto, package / proto.name)
    (package / "__init__.py").write_text('"""Generated from protos/absenteeism/v1 by tools/generate_stubs.py."""\n')
    return sorted(p for p in package.iterdir() if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="root to write absenteeism/v1/ under")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path.relative_to(args.out))


if __name__ == "__main__":
    main()
