"""What a server refuses to start with, each with exit code and a message naming the flag or file:
a config path that is no regular file (a FIFO, a device), drift thresholds that are not finite,
a drift window past its bound, a prediction log that is not a folder it can write to."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest

from feature_service import settings
from feature_service.processes.lone_server import EXIT_CONFIG
from testkit.boot_checks import as_non_root, refusal_lines
from testkit.server_process import ServerProcess
from testkit.supervised_servers import wait_for

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


def refused_at_boot(server: ServerProcess, *words: str, timeout: float = 30) -> None:
    started = time.monotonic()
    assert server.run_to_exit(timeout) == EXIT_CONFIG, "\n".join(server.logs)
    lines = refusal_lines(server)
    assert lines and all(word in lines[0] for word in words), lines
    assert not any("Traceback" in line for line in server.logs)
    assert time.monotonic() - started < timeout  # never hung on the file


def test_a_fifo_as_config_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "serving_config.pb"
    os.mkfifo(fifo)
    refused_at_boot(ServerProcess(fifo), str(fifo), "not a regular file (a FIFO)")


def test_a_device_as_config_is_refused_not_read_until_memory_runs_out(tmp_path):
    link = tmp_path / "serving_config.pb"
    link.symlink_to("/dev/zero")
    refused_at_boot(ServerProcess(link), str(link), "not a regular file (a character device)")


def test_a_socket_as_config_is_refused(tmp_path):
    path = tmp_path / "serving_config.pb"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        server = ServerProcess(path)
        refused_at_boot(server, str(path), "config file")
    assert any("socket" in line or "No such device" in line for line in refusal_lines(server))


def test_a_supervisor_refuses_a_fifo_too(tmp_path):
    fifo = tmp_path / "serving_config.pb"
    os.mkfifo(fifo)
    refused_at_boot(ServerProcess(fifo, "--processes", "2"), str(fifo), "not a regular file (a FIFO)")


def test_a_fifo_renamed_over_the_config_is_refused_and_a_later_good_one_loads(trained_config, tmp_path):
    path = tmp_path / "serving_config.pb"
    shutil.copyfile(trained_config.path, path)
    with ServerProcess(path, "--reload-interval", "0.2") as server:
        fifo = tmp_path / "incoming.fifo"
        os.mkfifo(fifo)
        fifo.rename(path)
        refused = wait_for(lambda: server.events("config_reload_refused"), 30, "the FIFO refused")
        assert "not a regular file (a FIFO)" in refused[0]["message"]
        staged = tmp_path / "staged.pb"
        shutil.copyfile(trained_config.path, staged)
        staged.rename(path)  # the same content again: read, found unchanged, still serving
        wait_for(lambda: server.events("config_reload_unchanged"), 30, "the good file read again")
        server.signal(signal.SIGHUP)
        started = time.monotonic()
        assert server.stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - started < 10  # SIGTERM is not held up by a reader stuck on a FIFO


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.5"])
@pytest.mark.parametrize("flag", ["--drift-psi-threshold", "--drift-jensen-shannon-threshold",
                                  "--drift-l-infinity-threshold"])
def test_a_threshold_that_is_not_a_finite_non_negative_number_is_refused(flag, value):
    with pytest.raises(settings.SettingsError, match=f"{flag} must be a finite number >= 0"):
        settings.parse(["--config", "c.pb", "--insecure", f"{flag}={value}"])


def test_the_drift_window_is_bounded():
    assert settings.parse(["--config", "c.pb", "--insecure", "--drift-window",
                           str(settings.MAX_DRIFT_WINDOW)]).drift_window == settings.MAX_DRIFT_WINDOW
    with pytest.raises(settings.SettingsError, match=f"--drift-window must be in 0..{settings.MAX_DRIFT_WINDOW}"):
        settings.parse(["--config", "c.pb", "--insecure", "--drift-window", "100000000"])


def test_the_command_exits_2_naming_the_flag(trained_config):
    server = ServerProcess(trained_config.path, "--drift-psi-threshold", "nan")
    assert server.run_to_exit() == 2
    assert any("--drift-psi-threshold must be a finite number >= 0, got nan" in line for line in server.logs)


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_prediction_log_at_a_regular_file_is_refused(trained_config, tmp_path, processes):
    file = tmp_path / "not-a-folder"
    file.write_text("")
    refused_at_boot(ServerProcess(trained_config.path, "--processes", processes, "--prediction-log", str(file)),
                    f"--prediction-log {file} is not a folder")


def test_a_prediction_log_folder_the_server_cannot_write_is_refused(trained_config):
    folder = Path(tempfile.mkdtemp(prefix="read-only-log-"))  # not under pytest's 0700 root folder
    try:
        folder.chmod(0o555)
        config = folder.parent / f"{folder.name}.pb"
        shutil.copyfile(trained_config.path, config)
        config.chmod(0o644)
        server = as_non_root(ServerProcess(config, "--prediction-log", str(folder)))
        refused_at_boot(server, f"--prediction-log {folder} is not a folder this server can write to")
    finally:
        shutil.rmtree(folder)
        (folder.parent / f"{folder.name}.pb").unlink(missing_ok=True)
