"""The contract: buf's STANDARD lint passes, and the committed stubs are what protos/ generates."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from absenteeism.absenteeism_schema import RAW_COLUMNS
from testkit.contract_docs import contract_table, documented_range, proto_field_comments
from testkit.paths import REPO_ROOT

ROOT = REPO_ROOT
BIN = Path(sys.executable).parent


def test_buf_lint_passes():
    result = subprocess.run([str(BIN / "buf"), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_catches_a_style_violation(tmp_path):
    # Proves the lint really runs the STANDARD rules on our module layout.
    (tmp_path / "protos" / "absenteeism" / "v1").mkdir(parents=True)
    (tmp_path / "buf.yaml").write_text((ROOT / "buf.yaml").read_text())
    (tmp_path / "protos" / "absenteeism" / "v1" / "bad.proto").write_text(
        'syntax = "proto3";\npackage absenteeism.v1;\nmessage bad_name { int32 SomeField = 1; }\n')
    result = subprocess.run([str(BIN / "buf"), "lint"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "bad_name" in result.stdout and "SomeField" in result.stdout


# Every contract package: each folder of protos/ that holds .proto files (absenteeism/v1, penguins/v1).
CONTRACT_PACKAGES = sorted({p.parent.relative_to(ROOT / "protos") for p in (ROOT / "protos").rglob("*.proto")})
STUB_SUFFIXES = (".py", ".pyi", ".proto")


def stale_stubs(generated_root: Path, committed_root: Path) -> list[str]:
    """Each file of a contract package whose committed copy differs from the generated one, is
    missing, or was not generated (a stub of a removed .proto)."""
    stale = []
    for package in CONTRACT_PACKAGES:
        generated, committed = generated_root / package, committed_root / package
        names = {p.name for p in generated.iterdir() if p.is_file()} if generated.is_dir() else set()
        kept = {p.name for p in committed.iterdir() if p.is_file() and p.suffix in STUB_SUFFIXES} \
            if committed.is_dir() else set()
        _, mismatch, errors = filecmp.cmpfiles(generated, committed, sorted(names & kept), shallow=False)
        stale += [f"{package / name}: differs" for name in mismatch + errors]
        stale += [f"{package / name}: not committed" for name in sorted(names - kept)]
        stale += [f"{package / name}: not generated" for name in sorted(kept - names)]
    return stale


@pytest.fixture(scope="module")
def generated_stubs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stubs")
    subprocess.run([sys.executable, str(ROOT / "tools" / "generate_stubs.py"), "--out", str(out)],
                   check=True, capture_output=True)
    return out


def test_the_freshness_check_covers_every_data_set():
    assert {Path("absenteeism") / "v1", Path("penguins") / "v1"} <= set(CONTRACT_PACKAGES)


def test_committed_stubs_are_fresh(generated_stubs):
    # also the copies of the .proto files beside them (package data: the contract in the wheel)
    for package in CONTRACT_PACKAGES:
        assert any((generated_stubs / package).glob("*_pb2.py")), f"{package}: nothing generated"
    stale = stale_stubs(generated_stubs, ROOT)
    assert not stale, f"stale stubs {stale}: run `python tools/generate_stubs.py` and commit the result"


def test_a_stale_stub_of_either_package_is_caught(generated_stubs, tmp_path):
    for package in CONTRACT_PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert stale_stubs(generated_stubs, tmp_path) == []
    edited = tmp_path / "penguins" / "v1" / "penguin_record_pb2.pyi"
    edited.write_text(edited.read_text() + "# edited by hand\n")
    (tmp_path / "absenteeism" / "v1" / "serving_config.proto").unlink()
    (tmp_path / "penguins" / "v1" / "old_pb2.py").write_text("")
    assert stale_stubs(generated_stubs, tmp_path) == [
        "absenteeism/v1/serving_config.proto: not committed",
        "penguins/v1/penguin_record_pb2.pyi: differs",
        "penguins/v1/old_pb2.py: not generated",
    ]


def test_raw_record_fields_match_the_raw_schema():
    from absenteeism.absenteeism_schema import RAW_COLUMN_NAMES
    from absenteeism.v1 import raw_record_pb2

    fields = raw_record_pb2.RawRecord.DESCRIPTOR.fields
    assert tuple(f.name for f in fields) == RAW_COLUMN_NAMES
    assert all(f.has_presence for f in fields), "every RawRecord field must be optional (presence tracked)"
    assert "absenteeism_time_in_hours" not in RAW_COLUMN_NAMES


def testdocumented_ranges_are_the_raw_schema_rules():
    """The proto comments and docs/contract.md state the range the shared raw schema enforces."""
    proto, contract = proto_field_comments(), contract_table()
    for column in RAW_COLUMNS:
        stats = column.check.statistics
        bounds = ((stats["min_value"], stats["max_value"]) if column.check.name == "in_range"
                  else (min(stats["allowed_values"]), max(stats["allowed_values"])))
        assert documented_range(proto[column.name]) == bounds, (column.name, proto[column.name])
        assert documented_range(contract[column.name]) == bounds, (column.name, contract[column.name])
