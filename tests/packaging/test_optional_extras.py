"""A command that needs an optional extra this install lacks says which one, with its own exit code,
instead of an internal error: --engine dask without Dask ([dask]: exit 2), the DAG pictures without
the graphviz package ([viz]: exit 69). In-process, the module made unimportable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from etl_job import cli


def test_engine_dask_without_dask_exits_2_naming_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now raises ImportError
    out = tmp_path / "out"
    assert cli.main(["run", "--engine", "dask", "--output-dir", str(out), "--no-progress"]) == cli.EXIT_USAGE == 2
    err = capsys.readouterr().err
    assert "--engine dask needs Dask" in err and "pip install 'absenteeism-serving[dask]'" in err
    assert "internal error" not in err
    assert not out.exists()  # refused before any work


def test_dag_without_the_graphviz_package_exits_69_naming_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    assert cli.main(["dag", "--output-dir", str(tmp_path)]) == cli.EXIT_MISSING_TOOL == 69
    err = capsys.readouterr().err
    assert "graphviz Python package is not installed" in err and "pip install 'absenteeism-serving[viz]'" in err
    assert "internal error" not in err


@pytest.mark.process  # runs the job in a fresh interpreter
def test_the_job_the_server_and_the_client_run_without_the_extras(tmp_path):
    # Dask, graphviz (and protoc) unimportable: the job's local engine runs the sample whole (its
    # online parity check runs the server's predictors), and the server's and client's modules load.
    code = ("import sys\n"
            "for name in ('dask', 'distributed', 'graphviz', 'networkx', 'grpc_tools'): sys.modules[name] = None\n"
            "import feature_service.command_line, feature_service.processes.lone_server\n"
            "import feature_service.rpc.prediction_server, clients.client_cli\n"
            "from etl_job.__main__ import main\n"
            "sys.exit(main())\n")
    result = subprocess.run([sys.executable, "-c", code, "run", "--output-dir", str(tmp_path), "--no-progress"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "serving_config.pb").is_file()
