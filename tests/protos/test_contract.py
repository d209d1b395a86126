"""The contract: buf's STANDARD lint passes, and the committed stubs are what protos/ generates."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from absenteeism.raw_schema import RAW_COLUMNS
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


def test_committed_stubs_are_fresh(tmp_path):
    # also the copies of the .proto files beside them (package data: the contract in the wheel)
    subprocess.run([sys.executable, str(ROOT / "tools" / "generate_stubs.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    generated = tmp_path / "absenteeism" / "v1"
    committed = ROOT / "absenteeism" / "v1"
    names = sorted(p.name for p in generated.iterdir() if p.is_file())
    assert names == sorted(p.name for p in committed.iterdir() if p.is_file() and p.suffix in (".py", ".pyi", ".proto"))
    _, mismatch, errors = filecmp.cmpfiles(generated, committed, names, shallow=False)
    assert not mismatch and not errors, (
        f"stale stubs {mismatch + errors}: run `python tools/generate_stubs.py` and commit the result")


def test_raw_record_fields_match_the_raw_schema():
    from absenteeism.raw_schema import RAW_COLUMN_NAMES
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
