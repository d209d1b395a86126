"""History and rollback: the output folder keeps the newest `--keep N` published runs (and the
published one, whatever its age); `runs list` shows them, `runs rollback` publishes one again with
the switch a new run makes, after checking it whole, and a server watching the folder follows."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from absenteeism import config_io
from etl_job import cli, output_folder, outputs, pipeline, run_history, run_settings, training

RUNS, KEEP = 12, 10


def _job(out: Path, alpha: float, keep: int = KEEP) -> str:
    """One run of the bundled sample, in this process; the id of the run it published."""
    pipeline.run(run_settings.RunSettings(output_dir=out, fit=training.FitSettings(alpha=alpha), parity_rows=50,
                                          keep=keep))
    return _published(out)


def _published(out: Path) -> str:
    return os.readlink(out / output_folder.CURRENT).removeprefix(f"{output_folder.RUNS}/")


def _kept(out: Path) -> list[str]:
    """Run folders on disk (not lock files, not leftovers' locks)."""
    return sorted(p.name for p in (out / output_folder.RUNS).iterdir() if p.is_dir())


def _state(out: Path) -> dict[str, object]:
    """What a refused command must not change: every link and every file's bytes."""
    state: dict[str, object] = {}
    for path in sorted(out.rglob("*")):
        key = str(path.relative_to(out))
        if path.is_symlink():
            state[key] = ("link", os.readlink(path))
        elif path.is_file():
            state[key] = ("file", path.read_bytes())
    return state


def _cli(*args: str) -> int:
    return cli.main(list(args))


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple[Path, list[str]]:
    """12 runs (each another alpha: another config) with --keep 10; the ids in publication order."""
    out = tmp_path_factory.mktemp("history") / "out"
    ids = [_job(out, alpha=1.0 + k / 4) for k in range(RUNS)]
    return out, ids


@pytest.fixture()
def out(history, tmp_path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(history[0], copy, symlinks=True)
    return copy


def test_twelve_runs_with_keep_ten_leave_the_newest_ten(history):
    out, ids = history
    assert len(set(ids)) == RUNS
    assert _kept(out) == sorted(ids[-KEEP:])  # the two oldest removed
    assert _published(out) == ids[-1]
    assert [run.run_id for run in run_history.kept_runs(out)] == ids[::-1][:KEEP]


def test_the_keep_flag_prunes_and_a_keep_below_one_is_refused(out, history, capsys):
    ids = history[1]
    for alpha in ("7", "8"):
        assert _cli("run", "--output-dir", str(out), "--no-progress", "--parity-rows", "50", "--alpha", alpha,
                    "--keep", "3") == 0
    newest = _published(out)
    kept = _kept(out)
    assert len(kept) == 3 and newest in kept and ids[-1] in kept and ids[-2] not in kept
    with pytest.raises(SystemExit) as refused:
        _cli("run", "--output-dir", str(out), "--keep", "0")
    assert refused.value.code == 2 and "--keep: 0 is not >= 1" in capsys.readouterr().err


def test_runs_list_shows_the_kept_runs_newest_first_with_their_figures(history, capsys):
    out, ids = history
    capsys.readouterr()
    assert _cli("runs", "list", "--output-dir", str(out)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == KEEP
    assert [line[2:].split()[0] for line in lines] == ids[::-1][:KEEP]
    assert lines[0].startswith("* ") and not any(line.startswith("*") for line in lines[1:])
    for line, run_id in zip(lines, ids[::-1], strict=False):
        report = json.loads((out / output_folder.RUNS / run_id / outputs.REPORT_FILE).read_text())
        config = config_io.read_config(out / output_folder.RUNS / run_id / config_io.CONFIG_FILE)
        rows = report["rows"]
        assert f"input {report['input']['sha256'][:12]} " in line
        assert f"rows {rows['read']} read, {rows['accepted']} accepted, {rows['rejected']} rejected" in line
        assert f"mae {report['metrics']['mae']:.4f} rmse {report['metrics']['rmse']:.4f}" in line
        assert line.endswith(f"config_id {config.content_sha256}")

    assert _cli("runs", "list", "--output-dir", str(out), "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [run["run_id"] for run in listed] == ids[::-1][:KEEP]
    assert [run["published"] for run in listed] == [True] + [False] * (KEEP - 1)
    times = [run["published_at"] for run in listed]
    assert times == sorted(times, reverse=True)
    for run in listed:
        report = json.loads((out / output_folder.RUNS / run["run_id"] / outputs.REPORT_FILE).read_text())
        assert run["evaluation"] == {"mae": report["metrics"]["mae"], "rmse": report["metrics"]["rmse"]}
        assert run["config_id"] == report["config"]["content_sha256"]
        assert run["input_sha256"] == report["input"]["sha256"]


def test_rollback_switches_every_output_to_the_chosen_run(out, history, capsys):
    chosen = history[1][-5]
    assert _cli("runs", "rollback", "--output-dir", str(out), chosen) == 0
    assert _published(out) == chosen
    folder = out / output_folder.RUNS / chosen
    for name in outputs.FILES:
        assert os.path.realpath(out / name) == os.path.realpath(folder / name)
        if (folder / name).is_file():
            assert (out / name).read_bytes() == (folder / name).read_bytes()
    assert config_io.read_config(out / config_io.CONFIG_FILE).content_sha256 == json.loads(
        (folder / outputs.REPORT_FILE).read_text())["config"]["content_sha256"]
    assert _kept(out) == sorted(history[1][-KEEP:])  # a rollback removes nothing
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".link")) or p.name.startswith("rollback-")]

    capsys.readouterr()
    before = _state(out)
    assert _cli("runs", "rollback", "--output-dir", str(out), chosen) == 0  # already published: a no-op
    assert "nothing changed" in capsys.readouterr().err
    assert _state(out) == before


@pytest.mark.parametrize("run_id", ["20990101T000000Z-nosuchrn", "..", "../out", ""])
def test_rollback_to_an_unknown_run_is_refused_with_exit_2(out, run_id, capsys):
    before = _state(out)
    assert _cli("runs", "rollback", "--output-dir", str(out), run_id) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("etl_job: no kept run")
    assert _state(out) == before


def test_rollback_to_a_run_that_is_not_whole_is_refused_with_exit_3(out, history, capsys):
    broken = history[1][-3]
    (out / output_folder.RUNS / broken / config_io.CONFIG_FILE).unlink()
    before = _state(out)
    assert _cli("runs", "rollback", "--output-dir", str(out), broken) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "serving_config.pb missing" in err[0] and err[0].startswith("etl_job: bad data:")
    assert _state(out) == before

    tampered = history[1][-4]
    config_path = out / output_folder.RUNS / tampered / config_io.CONFIG_FILE
    config = config_io.read_config(config_path)
    config.label = "tampered"  # the digest no longer matches
    config_path.write_bytes(config.SerializeToString())
    before = _state(out)
    assert _cli("runs", "rollback", "--output-dir", str(out), tampered) == 3
    assert "does not match its digest" in capsys.readouterr().err
    assert _state(out) == before


def test_a_run_from_before_report_html_still_rolls_back(out, history):
    """Runs published by earlier releases hold no report.html: the page is for people, not for serving."""
    older = history[1][-6]
    (out / output_folder.RUNS / older / outputs.REPORT_HTML_FILE).unlink()
    assert _cli("runs", "rollback", "--output-dir", str(out), older) == 0
    assert _published(out) == older and not (out / outputs.REPORT_HTML_FILE).exists()  # a dangling link
    assert config_io.read_config(out / config_io.CONFIG_FILE).content_sha256 == json.loads(
        (out / outputs.REPORT_FILE).read_text())["config"]["content_sha256"]


def test_rollback_into_a_folder_that_does_not_exist_is_exit_2(tmp_path, capsys):
    assert _cli("runs", "rollback", "--output-dir", str(tmp_path / "none"), "x") == 2
    assert _cli("runs", "list", "--output-dir", str(tmp_path / "none")) == 2


def test_pruning_never_removes_the_published_run_even_when_it_is_old(out, history, monkeypatch):
    ids = history[1]
    oldest = ids[-KEEP]
    assert _cli("runs", "rollback", "--output-dir", str(out), oldest) == 0
    output_folder.prune(out, 3)
    assert _kept(out) == sorted([oldest, *ids[-3:]])  # the newest 3 and the published one

    # A job that publishes while a rollback (another process) switches back to the old run: the
    # job's prune, right after its publish, finds the old run published and keeps it.
    real_prune = output_folder.prune

    def rollback_then_prune(folder: Path, history: int) -> list[Path]:
        assert run_history.rollback(folder, oldest)
        return real_prune(folder, history)

    monkeypatch.setattr(output_folder, "prune", rollback_then_prune)
    before = set(_kept(out))
    assert _job(out, alpha=9.0, keep=2) == oldest  # the rollback landed after the job's switch
    [newest] = set(_kept(out)) - before
    assert _kept(out) == sorted([oldest, ids[-1], newest])  # the newest 2 and the published one
    monkeypatch.undo()

    # Once another run is published, the old one goes like any other beyond the newest N.
    latest = _job(out, alpha=10.0, keep=2)
    assert _kept(out) == sorted([newest, latest])


def test_a_run_whose_lock_is_held_is_never_pruned(out, history):
    """A rollback (or any process) working on a kept run holds its lock: prune skips it."""
    ids = history[1]
    held = out / output_folder.RUNS / f"{ids[-KEEP]}.lock"
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        output_folder.prune(out, 1)
        assert _kept(out) == sorted([ids[-KEEP], ids[-1]])
    finally:
        os.close(fd)
    output_folder.prune(out, 1)
    assert _kept(out) == [ids[-1]]


def test_a_new_run_removes_leftovers_but_keeps_the_history(out, history, tmp_path):
    """A killed run's folder (never published, lock free) goes; the kept runs stay."""
    from etl_job import leases

    leftover = leases.Lease(out / output_folder.RUNS, "20990101T000000Z-")
    (leftover.folder / "half").write_text("x")
    leftover.release(remove=False)  # as a SIGKILL leaves it
    newest = _job(out, alpha=11.0)
    assert not leftover.folder.exists()
    assert _kept(out) == sorted([*history[1][-KEEP + 1:], newest])


# -- under a live server -------------------------------------------------------------------------

@pytest.mark.process
def test_a_live_server_follows_a_new_run_and_the_rollback_with_no_failed_call(tmp_path):
    from clients import PredictionClient
    from testkit.records import VALID_ROW
    from testkit.server_process import ServerProcess

    out = tmp_path / "out"
    run_a = _job(out, alpha=1.0)
    config_a = config_io.read_config(out / config_io.CONFIG_FILE).content_sha256
    seen: list[list[str]] = [[] for _ in range(8)]
    failures: list[object] = []
    stop = threading.Event()

    def call(k: int, target: str) -> None:
        with PredictionClient(target, insecure=True) as client:
            while not stop.is_set():
                try:
                    seen[k].append(client.predict(VALID_ROW).config_id)
                except Exception as error:  # noqa: BLE001 - every failure is counted, none may happen
                    failures.append(error)

    def loaded(server, count: int) -> list[dict]:
        deadline = time.monotonic() + 60
        while len(found := server.events("config_loaded")) < count:
            assert time.monotonic() < deadline, "\n".join(server.logs[-30:])
            time.sleep(0.05)
        return found

    with ServerProcess(out / config_io.CONFIG_FILE, "--reload-interval", "1") as server:
        threads = [threading.Thread(target=call, args=(k, server.target)) for k in range(8)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            job = subprocess.run([sys.executable, "-m", "etl_job", "run", "--output-dir", str(out), "--no-progress",
                                  "--parity-rows", "50", "--alpha", "5"], capture_output=True, text=True, timeout=300)
            assert job.returncode == 0, job.stderr
            config_b = config_io.read_config(out / config_io.CONFIG_FILE).content_sha256
            assert config_b != config_a
            assert loaded(server, 1)[-1]["config_id"] == config_b
            time.sleep(1.0)
            back = subprocess.run([sys.executable, "-m", "etl_job", "runs", "rollback", "--output-dir", str(out),
                                   run_a], capture_output=True, text=True, timeout=120)
            assert back.returncode == 0, back.stderr
            assert loaded(server, 2)[-1]["config_id"] == config_a
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
    assert failures == []
    for ids in seen:
        assert set(ids) <= {config_a, config_b}
        switches = [config_id for k, config_id in enumerate(ids) if k == 0 or ids[k - 1] != config_id]
        assert switches == [config_a, config_b, config_a]  # A, then B, then A: never back and forth
