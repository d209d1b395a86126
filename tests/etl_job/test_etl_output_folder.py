"""The output folder always holds one whole run: a run that fails (bad data, internal error) or is
stopped (SIGTERM) or killed (SIGKILL) at any phase leaves the previous run in place, file for file,
and no temp file; a stopped run also removes its spill, and the next run removes what a killed one
could not."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from absenteeism import config_io
from absenteeism.dataset import raw_writers
from etl_job import cli, outputs, run_settings, synthetic, validate
from testkit.run_outputs import content

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

OUTPUT_FILES = ("serving_config.pb", "serving_config.json", "training_set.parquet", "report.json", "rejects.csv")


def _run(source: Path, out: Path, *extra: str) -> int:
    return cli.main(["run", "--input", str(source), "--output-dir", str(out), "--no-progress", *extra])


def _published(out: Path) -> dict[str, bytes]:
    return {name: content(out / name) for name in OUTPUT_FILES if (out / name).exists()}


def _assert_one_run(out: Path) -> None:
    """The five files are of one run: the report names the config, and the counts agree."""
    config = config_io.read_config(out / "serving_config.pb")
    config_io.verify_config(config)
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["content_sha256"] == config.content_sha256
    assert json.loads((out / "serving_config.json").read_text())["content_sha256"] == config.content_sha256
    assert report["input"]["sha256"] == config.provenance.input_sha256
    assert pq.ParquetDataset(out / "training_set.parquet").read().num_rows == report["rows"]["accepted"]
    assert len(pd.read_csv(out / "rejects.csv")) == report["rejects"]["violations"]


def _temp_files(folder: Path) -> list[Path]:
    """Temp files of the atomic writes, and links made before their rename."""
    return [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".link"))]


def _hidden(out: Path) -> set[str]:
    """What the job keeps beside the published files (run folders, lock files)."""
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.name not in OUTPUT_FILES or p.parent != out}


@pytest.fixture(scope="module")
def previous_run(tmp_path_factory) -> Path:
    """An output folder holding one good run (the bundled sample)."""
    out = tmp_path_factory.mktemp("previous") / "out"
    assert _run(run_settings.SAMPLE_INPUT, out) == 0
    return out


@pytest.fixture(scope="module")
def other_input(tmp_path_factory) -> Path:
    """A different input: every output of a run on it differs from the previous run's."""
    path = tmp_path_factory.mktemp("other") / "other.csv"
    synthetic.write(synthetic.generate(2000, seed=3, bad_fraction=0.01), path)
    return path


@pytest.fixture()
def out(previous_run, tmp_path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(previous_run, copy, symlinks=True)
    return copy


def test_a_good_run_replaces_the_whole_previous_run(out, other_input):
    before = _published(out)
    earlier = {p.name for p in (out / ".runs").iterdir() if p.is_dir()}
    assert _run(other_input, out) == 0
    after = _published(out)
    assert all(after[name] != before[name] for name in OUTPUT_FILES)
    _assert_one_run(out)
    assert not _temp_files(out)
    runs = {p.name for p in (out / ".runs").iterdir() if p.is_dir()}
    # The previous run is kept aside; the new one (not its id's order: two runs may share a second) is published.
    assert earlier < runs and len(runs) == 2 and (out / "..data").resolve().name == (runs - earlier).pop()


def test_the_published_paths_are_relative_links_that_survive_a_move(out, tmp_path):
    """A volume mounted elsewhere (the server's /config) still resolves every file."""
    moved = tmp_path / "mounted" / "elsewhere"
    shutil.move(out, moved)
    _assert_one_run(moved)


def test_a_run_with_too_many_rejects_leaves_the_previous_run_and_points_to_its_rejects(out, tmp_path, capsys):
    before = _published(out)
    frame = synthetic.to_frame(synthetic.generate(200, seed=7)).astype(object).map(str)
    frame.loc[:39, "month_of_absence"] = "0"  # 20% bad rows
    source = tmp_path / "bad.csv"
    raw_writers.write_csv(frame, source)
    assert _run(source, out) == 3
    assert _published(out) == before
    _assert_one_run(out)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "40 of 200 rows (20.00%) broke the raw schema" in err
    rejects_path = Path(re.search(r"with its column and rule, is in (\S+) \(", err).group(1))
    assert rejects_path.parent.parent == out / ".runs"  # beside the published run, not in its place
    rejects = pd.read_csv(rejects_path)
    assert list(rejects.columns) == list(validate.REJECT_COLUMNS)
    assert sorted(rejects["source_row"]) == list(range(1, 41))
    assert not _temp_files(out)
    # The next run (here a good one) clears the failed run's folder.
    assert _run(run_settings.SAMPLE_INPUT, out) == 0
    assert not rejects_path.parent.exists()


def test_a_header_only_input_leaves_the_previous_run_and_no_empty_file(out, tmp_path, capsys):
    """Item 10: exit 3, and no 0-byte rejects.csv in place of the previous one."""
    before, hidden_before = _published(out), _hidden(out)
    source = tmp_path / "header_only.csv"
    source.write_text(run_settings.SAMPLE_INPUT.read_text().splitlines()[0] + "\r\n")
    assert _run(source, out) == 3
    assert "no data rows" in capsys.readouterr().err
    assert _published(out) == before
    assert _hidden(out) == hidden_before  # nothing kept: there is no rejected row to read
    assert not [p for p in out.rglob("*") if p.is_file() and p.stat().st_size == 0 and p.suffix != ".lock"]


def test_a_header_only_input_into_an_empty_folder_leaves_no_output(tmp_path):
    source = tmp_path / "header_only.csv"
    source.write_text(run_settings.SAMPLE_INPUT.read_text().splitlines()[0] + "\r\n")
    assert _run(source, tmp_path / "out") == 3
    assert not [name for name in OUTPUT_FILES if os.path.lexists(tmp_path / "out" / name)]


def test_a_rejects_file_with_no_rejected_row_is_a_valid_csv(tmp_path):
    with outputs.rejects_writer(tmp_path):
        pass
    assert (tmp_path / outputs.REJECTS_FILE).read_text().splitlines() == [",".join(validate.REJECT_COLUMNS)]


# A run of the real job in its own process, made to wait at one point of one phase (the test's
# only hook), so that a signal lands exactly there.
_PAUSING_JOB = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from etl_job import cli, online_parity, outputs, spill, validate

    phase, marker = sys.argv[1], Path(sys.argv[2])

    def pause():
        marker.write_text(phase)
        time.sleep(300)

    def pause_at_call(owner, name, call):
        real, calls = getattr(owner, name), [0]
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] == call:
                pause()
            return real(*args, **kwargs)
        setattr(owner, name, wrapper)

    if phase == "extract":  # the 2nd chunk: rejects half written, rows spilled
        pause_at_call(validate, "validate_chunk", 2)
    elif phase == "transform":  # the 2nd spilled chunk through the feature module
        real_chunks = spill.Spill.chunks
        def chunks(self):
            for i, chunk in enumerate(real_chunks(self)):
                if i == 1:
                    pause()
                yield chunk
        spill.Spill.chunks = chunks
    elif phase == "parity":  # the parity check (a forked child) running while the training set is written
        online_parity.check = lambda *args, **kwargs: pause()
    elif phase == "load":  # the training set half written
        pause_at_call(outputs, "training_set_table", 2)
    elif phase == "config":  # the training set complete, the config not yet written
        pause_at_call(outputs, "write_config", 1)
    elif phase == "report":  # every file written, none published yet
        real_report = outputs.write_report
        def write_report(*args, **kwargs):
            path = real_report(*args, **kwargs)
            pause()
            return path
        outputs.write_report = write_report
    sys.exit(cli.main(sys.argv[3:]))
""")

PHASES = ("extract", "transform", "parity", "load", "config", "report")


def _start_paused(phase: str, source: Path, out: Path, temp: Path) -> subprocess.Popen:
    marker = temp.parent / "paused"
    job = subprocess.Popen(
        [sys.executable, "-c", _PAUSING_JOB, phase, str(marker), "run", "--input", str(source),
         "--output-dir", str(out), "--no-progress", "--chunk-rows", "500"],
        env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if job.poll() is not None:
            raise AssertionError(f"the job ended (exit {job.returncode}) before {phase}: {job.communicate()[1]}")
        assert time.monotonic() < deadline, f"the job never reached {phase}"
        time.sleep(0.05)
    return job


def _spills(temp: Path) -> list[str]:
    return sorted(p.name for p in temp.iterdir())


def _processes_of(marker: Path) -> list[int]:
    """Living processes started with `marker` in their command line: the job and any child it forked."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(marker).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile
                pass
    return found


def _assert_nothing_left_running(temp: Path) -> None:
    deadline = time.monotonic() + 10
    while _processes_of(temp.parent / "paused"):
        assert time.monotonic() < deadline, "a process of the stopped job is still running"
        time.sleep(0.05)


@pytest.mark.parametrize("phase", PHASES)
def test_sigterm_at_any_phase_leaves_the_previous_run_no_temp_file_and_no_spill(out, other_input, tmp_path, phase):
    before, hidden_before = _published(out), _hidden(out)
    temp = tmp_path / "tmp"
    temp.mkdir()
    job = _start_paused(phase, other_input, out, temp)
    if phase in ("extract", "transform"):
        assert _spills(temp), "the spill exists while the job works"
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 143, err
    assert err.strip().splitlines()[-1] == "etl_job: stopped by SIGTERM"
    assert _published(out) == before
    _assert_one_run(out)
    assert _hidden(out) == hidden_before  # the stopped run's folder is gone
    assert not _temp_files(out)
    assert _spills(temp) == []
    _assert_nothing_left_running(temp)


@pytest.mark.parametrize("phase", PHASES)
def test_sigkill_at_any_phase_leaves_the_previous_run_and_the_next_run_cleans_up(
        out, other_input, tmp_path, monkeypatch, phase):
    before = _published(out)
    temp = tmp_path / "tmp"
    temp.mkdir()
    job = _start_paused(phase, other_input, out, temp)
    job.kill()
    job.communicate(timeout=60)
    assert job.returncode == -signal.SIGKILL
    _assert_nothing_left_running(temp)  # the parity check dies with the job
    assert _published(out) == before
    _assert_one_run(out)
    # What a killed process cannot remove: its run folder (under .runs/) and its spill.
    assert len([p for p in (out / ".runs").iterdir() if p.is_dir()]) == 2
    assert phase not in ("extract", "transform") or _spills(temp)

    # The next run removes them, and publishes itself whole.
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    assert _run(other_input, out) == 0
    _assert_one_run(out)
    assert _published(out)["report.json"] != before["report.json"]
    assert len([p for p in (out / ".runs").iterdir() if p.is_dir()]) == 2  # the previous run is kept, the killed one gone
    assert not _temp_files(out)
    assert _spills(temp) == []


def test_a_folder_written_before_this_layout_is_taken_over(previous_run, other_input, tmp_path):
    """Plain files and a killed writer's temp file (`.rejects.csv.<random>.tmp`), as jobs before
    the run folders left them: the next run replaces the files by its links and removes the temp file."""
    out = tmp_path / "out"
    out.mkdir()
    for name in OUTPUT_FILES:  # the training set was one file then, not a folder of parts
        source = outputs.training_set_part(previous_run, 0) if name == outputs.TRAINING_SET_FILE else previous_run / name
        shutil.copyfile(source, out / name)
    (out / ".rejects.csv.k2j4h5.tmp").write_text("source_row,source_file\n1,half")
    assert _run(other_input, out) == 0
    assert all(os.readlink(out / name) == f"..data/{name}" for name in OUTPUT_FILES)
    _assert_one_run(out)
    assert not _temp_files(out)
