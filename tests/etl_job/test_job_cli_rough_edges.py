"""What a new user meets at the job's command line: --version, the exit codes in --help, and a
missing graphviz said as such (exit 69 with how to install it), not as an internal error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from absenteeism import release
from etl_job import cli

ROOT = Path(__file__).resolve().parents[2]


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"python -m etl_job {release.version()}"
    assert release.version() != "(not installed)"  # make setup installs the project


def test_help_lists_every_exit_code(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "exit codes:" in text
    for code in (cli.EXIT_OK, cli.EXIT_INTERNAL, cli.EXIT_USAGE, cli.EXIT_BAD_DATA, cli.EXIT_MISSING_TOOL, 130,
                 cli.EXIT_STOPPED):
        assert f"  {code} " in text or f" {code} stopped" in text, code


def test_dag_without_graphviz_exits_69_saying_how_to_install_it(monkeypatch, tmp_path, capsys):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "dot" else real_which(name, *a, **k))
    assert cli.main(["dag", "--output-dir", str(tmp_path)]) == cli.EXIT_MISSING_TOOL == 69
    err = capsys.readouterr().err
    assert "graphviz's `dot` is not installed" in err and "apt-get install graphviz" in err
    assert "internal error" not in err


def test_a_local_run_without_bars_imports_neither_the_dask_engine_nor_tqdms_logging(tmp_path):
    """Their imports are startup time a local run without progress bars does not use (issue 27)."""
    script = ("import sys; from etl_job import cli; "
              f"code = cli.main(['run', '--no-progress', '--output-dir', {str(tmp_path)!r}]); "
              "print(code, sorted(m for m in ('etl_job.dask_engine', 'tqdm.contrib.logging') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[-2] == "0 []", done.stderr[-2000:]
