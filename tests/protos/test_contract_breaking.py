"""tools/check_contract.py: buf breaking against earlier commits catches a broken v1 contract.

The deliberately breaking changes are made on a copy of buf.yaml + protos/ in a temporary git
repository (never on the real tree): commit the real contract, commit the modified one, run the
check the way CI runs it (against HEAD~1).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.paths import REPO_ROOT

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ROOT = REPO_ROOT
SCRIPT = ROOT / "tools" / "check_contract.py"
V1 = Path("protos") / "absenteeism" / "v1"


def run_check(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=120)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=contract-test", "-c", "user.email=contract-test@localhost",
         "-c", "commit.gpgsign=false", *args],
        check=True, capture_output=True, text=True).stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A", ".")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose only commit holds a copy of the real contract."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(ROOT / "buf.yaml", repo / "buf.yaml")
    shutil.copytree(ROOT / "protos", repo / "protos")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "contract")
    return repo


def edit(repo: Path, proto: str, old: str, new: str) -> None:
    path = repo / V1 / proto
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {proto}: the test needs updating"
    path.write_text(text.replace(old, new))


# (proto file, text, replacement, what buf must say)
BREAKING = {
    "renumbered field": ("raw_record.proto", "optional int32 age = 9;", "optional int32 age = 21;",
                         'Previously present field "9" with name "age" on message "RawRecord" was deleted'),
    "removed field": ("raw_record.proto", "  optional int32 pet = 17;\n", "",
                      'Previously present field "17" with name "pet" on message "RawRecord" was deleted'),
    "removed field, number reserved": (
        "raw_record.proto", "  optional int32 pet = 17;\n", "  reserved 17;\n  reserved \"pet\";\n",
        'Previously present field "17" with name "pet" on message "RawRecord" was deleted'),
    "changed type": ("raw_record.proto", "optional double weight = 18;", "optional float weight = 18;",
                     'Field "18" with name "weight" on message "RawRecord" changed type from "double" to "float"'),
    "renamed field": ("prediction_service.proto",
                      "produced this prediction.\n  string config_id = 3;",
                      "produced this prediction.\n  string model_id = 3;",
                      'Field "3" on message "PredictResponse" changed name from "config_id" to "model_id"'),
    "optional dropped": ("raw_record.proto", "optional int32 son = 14;", "int32 son = 14;",
                         'Field "14" with name "son" on message "RawRecord"'),
    "removed rpc": ("prediction_service.proto",
                    "  rpc GetServingConfig(GetServingConfigRequest) returns (GetServingConfigResponse);\n", "",
                    'Previously present RPC "GetServingConfig" on service "PredictionService" was deleted'),
    "changed rpc streaming": ("prediction_service.proto",
                              "rpc PredictStream(stream PredictStreamRequest) returns (stream PredictStreamResponse);",
                              "rpc PredictStream(stream PredictStreamRequest) returns (PredictStreamResponse);",
                              'RPC "PredictStream" on service "PredictionService" changed from server streaming'),
}


@pytest.mark.parametrize("change", list(BREAKING))
def test_breaking_change_in_last_commit_fails(repo: Path, change: str) -> None:
    proto, old, new, message = BREAKING[change]
    edit(repo, proto, old, new)
    commit_all(repo, change)
    result = run_check(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout
    assert "buf lint: ok" in result.stdout  # caught by the breaking check, not by lint
    assert "buf breaking vs HEAD~1" in result.stdout and "FAILED" in result.stdout


def test_history_catches_a_break_in_an_earlier_commit_of_a_push(repo: Path) -> None:
    edit(repo, "raw_record.proto", "optional int32 age = 9;", "optional int32 age = 21;")
    commit_all(repo, "breaks the contract")
    (repo / "NOTES.md").write_text("an unrelated change on top\n")
    commit_all(repo, "unrelated")
    # HEAD~1 already has the broken contract: the previous-commit comparison alone cannot see it ...
    assert run_check(repo).returncode == 0
    # ... every earlier contract version can
    result = run_check(repo, "--history")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "history: 1 more earlier contract version(s)" in result.stdout
    assert 'Previously present field "9" with name "age" on message "RawRecord" was deleted' in result.stdout


def test_history_passes_a_purely_additive_history(repo: Path) -> None:
    edit(repo, "raw_record.proto", "  optional double body_mass_index = 20;\n",
         "  optional double body_mass_index = 20;\n  optional int32 shift = 21;\n")
    commit_all(repo, "additive 1")
    edit(repo, "raw_record.proto", "  optional int32 shift = 21;\n",
         "  optional int32 shift = 21;\n  optional int32 team = 22;\n")
    commit_all(repo, "additive 2")
    (repo / "NOTES.md").write_text("unrelated\n")
    commit_all(repo, "unrelated")
    result = run_check(repo, "--history")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "history: 2 more earlier contract version(s)" in result.stdout  # HEAD~1's own is compared once
    assert result.stdout.count(": ok") == 4  # lint, HEAD~1, two earlier versions


def test_uncommitted_breaking_change_fails_even_on_the_first_commit(repo: Path) -> None:
    edit(repo, "raw_record.proto", "optional int32 age = 9;", "optional int32 age = 21;")
    result = run_check(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped, HEAD is the first commit" in result.stdout  # nothing before HEAD
    assert "buf breaking vs HEAD (" in result.stdout  # but the edit is compared with HEAD
    assert 'field "9" with name "age"' in result.stdout


def test_additive_changes_pass(repo: Path) -> None:
    edit(repo, "raw_record.proto", "  optional double body_mass_index = 20;\n",
         "  optional double body_mass_index = 20;\n  // Added later.\n  optional int32 shift = 21;\n")
    edit(repo, "prediction_service.proto", "message GetServingConfigRequest {}\n",
         "message GetServingConfigRequest {}\n\nmessage ExplainRequest {\n  RawRecord record = 1;\n}\n\n"
         "message ExplainResponse {\n  repeated FeatureValue contributions = 1;\n}\n")
    edit(repo, "prediction_service.proto",
         "  rpc GetServingConfig(GetServingConfigRequest) returns (GetServingConfigResponse);\n",
         "  rpc GetServingConfig(GetServingConfigRequest) returns (GetServingConfigResponse);\n"
         "  // Per-feature contributions to one prediction.\n  rpc Explain(ExplainRequest) returns (ExplainResponse);\n")
    edit(repo, "prediction_service.proto", "  repeated double probabilities = 6;\n}",
         "  repeated double probabilities = 6;\n  // Added later.\n  string model_kind = 7;\n}")
    commit_all(repo, "additive")
    result = run_check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "buf lint: ok" in result.stdout
    assert "buf breaking vs HEAD~1" in result.stdout and ": ok" in result.stdout


def test_breaking_change_as_a_new_v2_package_side_by_side_passes(repo: Path) -> None:
    v2 = repo / "protos" / "absenteeism" / "v2"
    v2.mkdir()
    text = (repo / V1 / "raw_record.proto").read_text()
    assert "package absenteeism.v1;" in text and "optional int32 pet = 17;" in text
    (v2 / "raw_record.proto").write_text(
        text.replace("package absenteeism.v1;", "package absenteeism.v2;").replace("  optional int32 pet = 17;\n", ""))
    commit_all(repo, "v2 beside v1")
    result = run_check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "buf breaking vs HEAD~1" in result.stdout and "FAILED" not in result.stdout


def test_previous_commit_without_protos_is_skipped_not_failed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("before the contract\n")
    commit_all(repo, "readme")
    shutil.copy2(ROOT / "buf.yaml", repo / "buf.yaml")
    shutil.copytree(ROOT / "protos", repo / "protos")
    commit_all(repo, "contract")
    result = run_check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "that commit has no .proto file yet" in result.stdout


def test_unknown_ref_cannot_run(repo: Path) -> None:
    result = run_check(repo, "--against", "no-such-branch")
    assert result.returncode == 2
    assert "no-such-branch names no commit" in result.stderr


def test_this_repository_keeps_its_contract() -> None:
    """The real check CI runs: the working tree against the previous commit of main and against
    every earlier version of the contract."""
    result = run_check(ROOT, "--history")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "buf lint: ok" in result.stdout
    assert "buf breaking vs HEAD~1" in result.stdout
