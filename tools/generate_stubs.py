"""Generate the Python protobuf/gRPC stubs (and mypy .pyi stubs) from protos/.

The one documented command:  python tools/generate_stubs.py
Writes, for each contract package (absenteeism/v1/ and penguins/v1/), its *_pb2.py, *_pb2_grpc.py,
*.pyi, and a copy of each .proto (the contract ships in the wheel as package data beside its stubs:
importlib.resources.files("absenteeism.v1")). One protoc run: penguins.v1 imports absenteeism.v1's
framework messages. Never edit those by hand: protos/ is the source.
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
# Every contract package, as its folder under protos/ (and under the output root).
PACKAGE_DIRS = (Path("absenteeism") / "v1", Path("penguins") / "v1")


def proto_files(package_dir: Path) -> list[Path]:
    return sorted((PROTO_ROOT / package_dir).glob("*.proto"))


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
    protos = [proto for package_dir in PACKAGE_DIRS for proto in proto_files(package_dir)]
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
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for package_dir in PACKAGE_DIRS:
        package = out_dir / package_dir
        for proto in proto_files(package_dir):  # the contract itself, shipped with the stubs (package data)
            shutil.copyfile(proto, package / proto.name)
        (package / "__init__.py").write_text(
            f'"""Generated from protos/{package_dir.as_posix()} by tools/generate_stubs.py."""\n')
        written += sorted(p for p in package.iterdir() if p.is_file())
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT,
                        help="root to write absenteeism/v1/ and penguins/v1/ under")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path.relative_to(args.out))


if __name__ == "__main__":
    main()
