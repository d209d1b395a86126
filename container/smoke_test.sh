#!/usr/bin/env bash
# Container smoke test, run by CI: builds the Dockerfile's two targets with podman, fully
# offline, and runs them for real.
#
#   1. host tools: podman, buildah, runc, debootstrap from Debian (installed if missing)
#   2. base image: a minimal Debian bookworm with python3 + venv, debootstrapped and imported
#      (no image registry is reachable here), passed to the Dockerfile as BASE_IMAGE
#   3. wheels: the project's dependencies downloaded on the host into the build context's
#      container/wheelhouse/ (the build context is a snapshot of the work tree under $WORK)
#   4. build: `podman build --network none` with PIP_NO_INDEX=1, targets etl and server
#   5. ETL container on the bundled sample, input and outputs on volumes, no network
#      and the ETL image as a `dask scheduler` and a `dask worker`, the job --engine dask on them
#   6. server container with that config, host network on 127.0.0.1: grpc health, the image's
#      HEALTHCHECK, reflection, a Predict call checked against a golden row, /metrics
#   7. SIGTERM (podman stop): exit 0 within the grace period
#   8. image sizes; the trap removes every container, image and file this run made
#
# Everything runs in a private podman storage root under $WORK, so the host's own images and
# containers are never touched. Network traffic: loopback, and the Debian/PyPI registries in
# steps 1-3 only. Environment knobs: SMOKE_CACHE (debootstrap tarball + wheel cache dir, kept
# between runs), DEBIAN_MIRROR, SMOKE_KEEP=1 (leave $WORK for inspection).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

T0=$(date +%s)
step() { printf '\n==> [%s +%3ds] %s\n' "$(date -u +%H:%M:%S)" "$(($(date +%s) - T0))" "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\nsmoke_test: FAIL: %s\n' "$*" >&2; exit 1; }

VENV_PY="$REPO/.venv/bin/python"
GRPCURL="$REPO/.venv/bin/grpcurl"
HADOLINT="$REPO/.venv/bin/hadolint"
CACHE="${SMOKE_CACHE:-/var/tmp/absenteeism-container-cache}"
WORK="$(mktemp -d /var/tmp/absenteeism-smoke.XXXXXX)"
CONTEXT="$WORK/context"   # a snapshot of the build context: both targets build from the same files
RUN_ID="$(basename "$WORK" | cut -d. -f2 | tr '[:upper:]' '[:lower:]')"
BASE_TAG="localhost/absenteeism-smoke-base:bookworm"
ETL_TAG="localhost/absenteeism-etl:smoke-$RUN_ID"
SERVER_TAG="localhost/absenteeism-server:smoke-$RUN_ID"
SERVER_CTR="absenteeism-server-smoke-$RUN_ID"
TLS_CTR="absenteeism-server-tls-smoke-$RUN_ID"
GRACE=10           # the server's --grace; podman stop waits GRACE+5 s before SIGKILL
APP_UID=10001      # the image's non-root user (Dockerfile)

export CONTAINERS_CONF="$REPO/container/containers.conf"
PODMAN=(podman --root "$WORK/storage" --runroot "$WORK/runroot")
# podman wants systemd to run HEALTHCHECK timers; there is none here, and the step that needs the
# check runs it by hand (podman healthcheck run), so its complaints about that are dropped.
pm() { "${PODMAN[@]}" "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

cleanup() {
  local rc=$?
  set +e
  step "cleanup (exit status so far: $rc)"
  if [[ $rc -ne 0 ]]; then
    for ctr in $(pm ps -a --format '{{.Names}}' 2>/dev/null); do
      info "log of container $ctr:"; pm logs "$ctr" 2>&1 | tail -40 | sed 's/^/      /'
    done
  fi
  pm rm --force --all --time 0 >/dev/null 2>&1
  pm rmi --force --all >/dev/null 2>&1
  info "containers left: $(pm ps -aq 2>/dev/null | wc -l), images left: $(pm images -q 2>/dev/null | wc -l)"
  # overlay mounts under the private root must go before the directory can
  grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  if [[ "${SMOKE_KEEP:-0}" == 1 ]]; then info "kept $WORK"; else rm -rf "$WORK"; fi
  if [[ $rc -eq 0 ]]; then
    step "container smoke test PASSED in $(($(date +%s) - T0)) s"
  else
    printf '\n==> container smoke test FAILED (exit %s) after %s s\n' "$rc" "$(($(date +%s) - T0))" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT

# ----------------------------------------------------------------------------------------------
step "host tools"
need=()
for tool in podman buildah runc debootstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  [[ $(id -u) -eq 0 ]] || die "missing ${need[*]} and not root: apt-get install -y ${need[*]}"
  info "installing from Debian: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq podman buildah runc debootstrap >/dev/null
fi
if [[ ! -x "$GRPCURL" || ! -x "$HADOLINT" ]]; then
  info "project venv incomplete: make setup"; make setup >/dev/null
fi
info "$(podman --version), $(buildah --version | cut -d' ' -f1-3), $(runc --version | head -1)"
info "CONTAINERS_CONF=$CONTAINERS_CONF; private storage root $WORK/storage"
[[ "$(pm info --format '{{.Host.OCIRuntime.Name}}')" == runc ]] || die "podman does not use runc: check $CONTAINERS_CONF"

step "hadolint Dockerfile"
"$HADOLINT" Dockerfile && info "clean"

# ----------------------------------------------------------------------------------------------
step "base image: debootstrap bookworm (python3, python3-venv) -> $BASE_TAG"
mirror="${DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
  # the same Debian mirror apt uses on this host, else Debian's default
  mirror="$(sed -n 's/^URIs: *\([^ ]*\/debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
  mirror="${mirror:-http://deb.debian.org/debian}"
fi
mkdir -p "$CACHE"
base_tar="$CACHE/bookworm-python3-rootfs.tar"
if [[ -f "$base_tar" && -n "$(find "$base_tar" -mtime -7)" ]]; then
  info "reusing $base_tar (less than 7 days old)"
else
  rootfs="$WORK/rootfs"
  info "debootstrap --variant=minbase from $mirror"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$mirror" \
    > "$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
  # what an image does not need: downloaded .debs, apt lists, docs
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
         "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
         "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
  rm -rf "$rootfs"
fi
pm import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
  "$base_tar" "$BASE_TAG" >/dev/null
base_py="$(pm run --rm --network none "$BASE_TAG" python3 -c 'import sys, venv; print("%d.%d" % sys.version_info[:2])')"
info "imported; python3 $base_py inside"

# ----------------------------------------------------------------------------------------------
step "build context snapshot + wheels for python $base_py downloaded on the host"
# What the Dockerfile copies (see .dockerignore); a snapshot, so that both targets are built from
# the same files even while the work tree changes.
mkdir -p "$CONTEXT"
cp -a --parents Dockerfile .dockerignore pyproject.toml setup.cfg absenteeism etl_job feature_service penguins \
  container/healthcheck.py container/entrypoint.py container/wheelhouse "$CONTEXT"/
find "$CONTEXT" -name __pycache__ -prune -exec rm -rf {} +
quiet_pip() {  # pip, minus the host's notes about its optional local mirrors
  "$VENV_PY" -m pip "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}
"$VENV_PY" - > "$WORK/requirements.txt" <<'EOF'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
# the core (both images) and the [dask] extra (the ETL image), resolved together as the Dockerfile does
print("\n".join(project["build-system"]["requires"] + project["project"]["dependencies"]
                + project["project"]["optional-dependencies"]["dask"]))
EOF
quiet_pip download --quiet --disable-pip-version-check --only-binary=:all: \
  --python-version "$base_py" -d "$CACHE/wheels" -r "$WORK/requirements.txt"
# the context gets exactly the wheels this resolution needs, from the cache, offline
quiet_pip download --quiet --disable-pip-version-check --only-binary=:all: \
  --python-version "$base_py" --no-index --find-links "$CACHE/wheels" \
  -d "$CONTEXT/container/wheelhouse" -r "$WORK/requirements.txt"
info "$(find "$CONTEXT/container/wheelhouse" -name '*.whl' | wc -l) wheels," \
  "$(du -sh "$CONTEXT/container/wheelhouse" | cut -f1) in the build context"

# ----------------------------------------------------------------------------------------------
build() {  # build TARGET TAG
  local t=$(date +%s)
  pm build --quiet --format docker --network none --pull=never \
    --build-arg BASE_IMAGE="$BASE_TAG" --build-arg PIP_NO_INDEX=1 \
    --target "$1" --tag "$2" "$CONTEXT" > "$WORK/build-$1.log" 2>&1 \
    || { tail -40 "$WORK/build-$1.log"; die "podman build --target $1 failed"; }
  info "$2 built in $(($(date +%s) - t)) s"
}
step "build (podman build --network none, PIP_NO_INDEX=1): target etl"
build etl "$ETL_TAG"
step "build: target server (shares the build stage; its own venv stage and last layers)"
build server "$SERVER_TAG"

step "image checks: non-root user, exec-form entrypoints, healthcheck, no build tools, extras"
for tag in "$ETL_TAG" "$SERVER_TAG"; do
  user="$(pm image inspect --format '{{.Config.User}}' "$tag")"
  [[ "$user" == "$APP_UID:$APP_UID" ]] || die "$tag runs as '$user', expected $APP_UID:$APP_UID"
  info "$tag: user $user, entrypoint $(pm image inspect --format '{{json .Config.Entrypoint}}' "$tag")"
done
hc="$(pm image inspect --format '{{json .Config.Healthcheck.Test}}' "$SERVER_TAG")"
[[ "$hc" == *healthcheck.py* ]] || die "server image has no gRPC HEALTHCHECK (got $hc)"
info "server HEALTHCHECK: $hc"
for tag in "$ETL_TAG" "$SERVER_TAG"; do
  tools="$(pm run --rm --network none --entrypoint /bin/sh "$tag" -c \
    'for t in gcc cc c++ make ld pip pip3; do command -v "$t"; done; true')"
  [[ -z "$tools" ]] || die "build tools in $tag: $tools"
done
info "no gcc/cc/c++/make/ld/pip in either runtime image"
# the server image is the core install: no Dask, graphviz or protoc; the ETL image adds [dask] only
has() {  # has TAG: the optional modules importable in that image, space-separated
  pm run --rm --network none --entrypoint /opt/venv/bin/python "$1" -c 'import importlib.util as u
print(" ".join(m for m in ("dask", "distributed", "graphviz", "grpc_tools", "pytest") if u.find_spec(m)))'
}
server_extras="$(has "$SERVER_TAG")"; etl_extras="$(has "$ETL_TAG")"
[[ -z "$server_extras" ]] || die "the server image carries optional modules: $server_extras"
[[ "$etl_extras" == "dask distributed" ]] || die "the ETL image's optional modules: '$etl_extras', expected 'dask distributed'"
info "server image: the core only; ETL image: the core + [dask] ($etl_extras)"

# ----------------------------------------------------------------------------------------------
step "ETL container: bundled sample on an input volume, outputs on a volume, --network none"
sample="$REPO/etl_job/sample_data"
[[ -d "$sample" ]] || die "no bundled sample at $sample"
out="$WORK/etl-output"
mkdir -p "$out" && chown "$APP_UID:$APP_UID" "$out"
sample_file="$(find "$sample" -maxdepth 1 -name '*.csv' | sort | head -1)"
# the input volume: a copy the container's user can read whatever the checkout's file modes are
input="$WORK/etl-input"
mkdir -p "$input" && install -m 0644 "$sample_file" "$input/"
info "input volume $input: $(basename "$sample_file") ($(($(wc -l < "$sample_file") - 1)) rows)"
t=$(date +%s)
set +e
pm run --rm --network none --read-only --tmpfs /tmp \
  -v "$input:/data/input:ro" -v "$out:/data/output" \
  "$ETL_TAG" run --input "/data/input/$(basename "$sample_file")" --output-dir /data/output \
  > "$WORK/etl.log" 2>&1
etl_rc=$?
set -e
sed 's/^/      /' "$WORK/etl.log" | tail -15
[[ $etl_rc -eq 0 ]] || die "ETL container exited $etl_rc"
info "ETL exit 0 in $(($(date +%s) - t)) s; outputs: $(cd "$out" && ls | tr '\n' ' ')"
[[ -s "$out/serving_config.pb" ]] || die "ETL wrote no serving_config.pb"

step "ETL container: the image's default command (the sample bundled in the package)"
mkdir -p "$WORK/etl-default" && chown "$APP_UID:$APP_UID" "$WORK/etl-default"
pm run --rm --network none --read-only --tmpfs /tmp -v "$WORK/etl-default:/data/output" "$ETL_TAG" \
  > "$WORK/etl-default.log" 2>&1 || { tail -5 "$WORK/etl-default.log"; die "ETL default command failed"; }
info "$(tail -1 "$WORK/etl-default.log" | cut -c1-150)"
[[ -s "$WORK/etl-default/serving_config.pb" ]] || die "the default ETL run wrote no serving_config.pb"

step "ETL container: a missing input file is bad data (exit 3), not a crash"
set +e
pm run --rm --network none --read-only --tmpfs /tmp -v "$out:/data/output" \
  "$ETL_TAG" run --input /data/input/missing.csv --output-dir /data/output > "$WORK/etl-bad.log" 2>&1
bad_rc=$?
set -e
info "exit $bad_rc: $(tail -1 "$WORK/etl-bad.log")"
[[ $bad_rc -eq 3 ]] || die "ETL on a missing input exited $bad_rc, expected 3 (bad data)"

step "ETL container: podman stop (SIGTERM) in the middle of a run stops the job at once (exit 143)"
"$VENV_PY" -m etl_job generate --rows 1000000 --seed 6 --output "$input/large.csv" 2>/dev/null
chmod 0644 "$input/large.csv"
mkdir -p "$WORK/etl-stopped" && chown "$APP_UID:$APP_UID" "$WORK/etl-stopped"
etl_ctr="absenteeism-etl-smoke-$RUN_ID"
pm run --detach --name "$etl_ctr" --network none --read-only --tmpfs /tmp \
  -v "$input:/data/input:ro" -v "$WORK/etl-stopped:/data/output" \
  "$ETL_TAG" run --input /data/input/large.csv --output-dir /data/output >/dev/null
# One second in, the job is importing or working (1,000,000 rows take it several seconds more);
# its SIGTERM handler is the first thing entrypoint.py installs, milliseconds after start.
sleep 1
[[ "$(pm inspect --format '{{.State.Status}}' "$etl_ctr")" == running ]] || die "ETL ended before it could be stopped"
t_ns=$(date +%s%N)
pm stop --time 30 "$etl_ctr" >/dev/null
etl_stop_ms=$((($(date +%s%N) - t_ns) / 1000000))
etl_stop_rc="$(pm inspect --format '{{.State.ExitCode}}' "$etl_ctr")"
info "exit $etl_stop_rc after ${etl_stop_ms} ms: $(pm logs "$etl_ctr" 2>&1 | tail -1)"
pm rm "$etl_ctr" >/dev/null
[[ "$etl_stop_rc" == 143 ]] || die "stopped ETL exited $etl_stop_rc, expected 143 (128 + SIGTERM; 137 = it had to be killed)"
((etl_stop_ms < 5000)) || die "the ETL took ${etl_stop_ms} ms to stop"
[[ ! -e "$WORK/etl-stopped/serving_config.pb" ]] || die "a stopped ETL run left a serving config"

step "ETL image as a Dask cluster: a 'dask scheduler' and a 'dask worker' container, the job --engine dask"
# No network but one loopback, shared (--network container:): the worker and the job mount the
# input and the output at the same paths, as every worker of a real cluster must (docs/distributed.md).
SCHED_CTR="absenteeism-dask-scheduler-smoke-$RUN_ID"
WORKER_CTR="absenteeism-dask-worker-smoke-$RUN_ID"
dask_out="$WORK/etl-dask"
mkdir -p "$dask_out" && chown "$APP_UID:$APP_UID" "$dask_out"
pm run --detach --name "$SCHED_CTR" --network none --read-only --tmpfs /tmp --entrypoint dask \
  "$ETL_TAG" scheduler --host 127.0.0.1 --port 8786 --no-dashboard >/dev/null
pm run --detach --name "$WORKER_CTR" --network "container:$SCHED_CTR" --read-only --tmpfs /tmp \
  -v "$input:/data/input:ro" -v "$dask_out:/data/output" --entrypoint dask \
  "$ETL_TAG" worker tcp://127.0.0.1:8786 --nthreads 1 --no-dashboard --host 127.0.0.1 >/dev/null
t=$(date +%s)
set +e
pm run --rm --network "container:$SCHED_CTR" --read-only --tmpfs /tmp \
  -v "$input:/data/input:ro" -v "$dask_out:/data/output" \
  "$ETL_TAG" run --input "/data/input/$(basename "$sample_file")" --output-dir /data/output \
  --engine dask --scheduler tcp://127.0.0.1:8786 --connect-timeout 60 --part-bytes 50000 > "$WORK/etl-dask.log" 2>&1
dask_rc=$?
set -e
sed 's/^/      /' "$WORK/etl-dask.log" | tail -3
[[ $dask_rc -eq 0 ]] || die "the ETL container on the Dask containers exited $dask_rc"
info "exit 0 in $(($(date +%s) - t)) s; $(ls "$dask_out/training_set.parquet/" | wc -l) training set parts, written by the worker"
"$VENV_PY" - "$out" "$dask_out" <<'EOF' || die "the Dask containers' outputs differ from the local engine's"
import sys
import pandas as pd
local, dask = sys.argv[1:]
assert pd.read_parquet(f"{dask}/training_set.parquet").equals(pd.read_parquet(f"{local}/training_set.parquet"))
assert open(f"{dask}/rejects.csv", "rb").read() == open(f"{local}/rejects.csv", "rb").read()
EOF
info "training set and rejects equal to the local engine's run above"
pm stop --time 10 "$WORKER_CTR" "$SCHED_CTR" >/dev/null
pm rm "$WORKER_CTR" >/dev/null  # first: it uses the scheduler's network
pm rm "$SCHED_CTR" >/dev/null

# ----------------------------------------------------------------------------------------------
step "server container: the image's default refuses plaintext without being told (TLS or --insecure)"
set +e
pm run --rm --network none --read-only -v "$out:/config:ro" "$SERVER_TAG" > "$WORK/server-refuse.log" 2>&1
refuse_rc=$?
set -e
info "exit $refuse_rc: $(tail -1 "$WORK/server-refuse.log" | cut -c1-160)"
[[ $refuse_rc -eq 2 ]] || die "server without TLS or --insecure exited $refuse_rc, expected 2"

free_port() { "$VENV_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"; metrics_port="$(free_port)"
target="127.0.0.1:$port"
step "server container: host network, $target (metrics :$metrics_port), config from the ETL volume"
pm run --detach --name "$SERVER_CTR" --network host --read-only --tmpfs /tmp \
  -v "$out:/config:ro" \
  -e FEATURE_SERVICE_HOST=127.0.0.1 -e FEATURE_SERVICE_PORT="$port" \
  -e FEATURE_SERVICE_METRICS_PORT="$metrics_port" -e FEATURE_SERVICE_INSECURE=true \
  -e FEATURE_SERVICE_GRACE="$GRACE" \
  "$SERVER_TAG" >/dev/null
wait_serving() {  # wait_serving CONTAINER GRPCURL_ARGS... : until grpc.health.v1 says SERVING
  local ctr=$1 t=$(date +%s) state reply
  shift
  until reply="$("$GRPCURL" -max-time 2 "$@" grpc.health.v1.Health/Check 2>/dev/null)" \
        && [[ "$reply" == *SERVING* ]]; do
    state="$(pm inspect --format '{{.State.Status}}' "$ctr")"
    [[ "$state" == running ]] || die "$ctr is $state (exit $(pm inspect --format '{{.State.ExitCode}}' "$ctr"))"
    (($(date +%s) - t < 90)) || die "$ctr not SERVING after 90 s"
    sleep 0.5
  done
  info "grpcurl grpc.health.v1.Health/Check: $(tr -d ' \n' <<< "$reply") after $(($(date +%s) - t)) s"
}
wait_serving "$SERVER_CTR" -plaintext "$target"

step "server container: the image's HEALTHCHECK (container/healthcheck.py inside the container)"
pm healthcheck run "$SERVER_CTR" || die "podman healthcheck run: unhealthy"
info "healthy ($(pm inspect --format '{{.State.Health.Status}}' "$SERVER_CTR" 2>/dev/null || echo n/a))"

step "server container: reflection lists the service"
services="$("$GRPCURL" -plaintext "$target" list)" || die "grpcurl list (reflection) failed"
sed 's/^/      /' <<< "$services"
grep -qx absenteeism.v1.PredictionService <<< "$services" \
  || die "reflection does not list absenteeism.v1.PredictionService"

step "server container: Predict (grpcurl) on the config's first golden row"
"$VENV_PY" - "$out/serving_config.pb" "$WORK/request.json" "$WORK/expected.txt" <<'EOF'
import json, sys
from google.protobuf import json_format
from absenteeism.v1 import serving_config_pb2, prediction_service_pb2
config = serving_config_pb2.ServingConfig.FromString(open(sys.argv[1], "rb").read())
golden = config.golden_rows[0]
request = prediction_service_pb2.PredictRequest(record=golden.record, include_features=True)
open(sys.argv[2], "w").write(json_format.MessageToJson(request))
open(sys.argv[3], "w").write(repr(golden.prediction))
EOF
"$GRPCURL" -plaintext -d @ "$target" absenteeism.v1.PredictionService/Predict \
  < "$WORK/request.json" > "$WORK/response.json" || die "Predict failed"
"$VENV_PY" - "$WORK/response.json" "$WORK/expected.txt" <<'EOF' || die "Predict answer differs from the golden row"
import json, sys
response = json.load(open(sys.argv[1]))
expected = float(open(sys.argv[2]).read())
got = float(response["prediction"])
print(f"    prediction {got!r} (golden {expected!r}), {len(response.get('features', []))} features, "
      f"config {response.get('configId', response.get('config_id', ''))[:12]}")
sys.exit(0 if got == expected else 1)
EOF

step "server container: Prometheus /metrics on 127.0.0.1:$metrics_port"
"$VENV_PY" - "$metrics_port" <<'EOF' || die "/metrics not served"
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
lines = [l for l in body.splitlines() if l and not l.startswith("#")]
print(f"    {len(lines)} samples, e.g. {lines[0][:100] if lines else '(none)'}")
sys.exit(0 if lines else 1)
EOF

# ----------------------------------------------------------------------------------------------
step "stop: podman stop (SIGTERM; SIGKILL only after $((GRACE + 5)) s), expect exit 0 within the ${GRACE} s grace"
t_ns=$(date +%s%N)
pm stop --time $((GRACE + 5)) "$SERVER_CTR" >/dev/null
stop_ms=$((($(date +%s%N) - t_ns) / 1000000))
code="$(pm inspect --format '{{.State.ExitCode}}' "$SERVER_CTR")"
pm logs "$SERVER_CTR" 2>&1 | tail -3 | sed 's/^/      /'
info "exit code $code after ${stop_ms} ms"
[[ "$code" == 0 ]] || die "server exited $code on SIGTERM (137 = it had to be killed)"
((stop_ms <= GRACE * 1000)) || die "server took ${stop_ms} ms to stop, more than the ${GRACE} s grace"

# ----------------------------------------------------------------------------------------------
step "server container, mutual TLS: certificates on a volume; health over mTLS, grpcurl and HEALTHCHECK"
tls="$WORK/tls"
"$VENV_PY" -c 'import sys; from pathlib import Path; from testkit.certificates import make_certificates
make_certificates(Path(sys.argv[1]))' "$tls" || die "could not make test certificates (openssl)"
chmod 0644 "$tls"/*.key   # throwaway keys of this run, readable by the container's uid
tls_port="$(free_port)"
pm run --detach --name "$TLS_CTR" --network host --read-only --tmpfs /tmp \
  -v "$out:/config:ro" -v "$tls:/tls:ro" \
  -e FEATURE_SERVICE_HOST=127.0.0.1 -e FEATURE_SERVICE_PORT="$tls_port" -e FEATURE_SERVICE_METRICS_PORT=0 \
  -e FEATURE_SERVICE_TLS_CERT=/tls/server.crt -e FEATURE_SERVICE_TLS_KEY=/tls/server.key \
  -e FEATURE_SERVICE_TLS_CLIENT_CA=/tls/ca.crt -e FEATURE_SERVICE_HEALTHCHECK_CA=/tls/ca.crt \
  -e FEATURE_SERVICE_HEALTHCHECK_CERT=/tls/client.crt -e FEATURE_SERVICE_HEALTHCHECK_KEY=/tls/client.key \
  "$SERVER_TAG" >/dev/null
mtls=(-cacert "$tls/ca.crt" -cert "$tls/client.crt" -key "$tls/client.key")
wait_serving "$TLS_CTR" "${mtls[@]}" "127.0.0.1:$tls_port"
if "$GRPCURL" -max-time 5 -cacert "$tls/ca.crt" "127.0.0.1:$tls_port" grpc.health.v1.Health/Check >/dev/null 2>&1; then
  die "the mTLS server answered a client without a certificate"
fi
info "a client without a certificate is refused"
pm healthcheck run "$TLS_CTR" || die "podman healthcheck run (mTLS): unhealthy"
info "HEALTHCHECK over mTLS: healthy"
t_ns=$(date +%s%N)
pm stop --time $((GRACE + 5)) "$TLS_CTR" >/dev/null
info "stopped: exit $(pm inspect --format '{{.State.ExitCode}}' "$TLS_CTR") after $((($(date +%s%N) - t_ns) / 1000000)) ms"
[[ "$(pm inspect --format '{{.State.ExitCode}}' "$TLS_CTR")" == 0 ]] || die "mTLS server did not exit 0 on SIGTERM"

# ----------------------------------------------------------------------------------------------
step "image sizes"
pm images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -v '<none>' | sed 's/^/    /'
info "the two targets share all but their venv layer: all images of this run take $(du -sh "$WORK/storage/overlay" | cut -f1) on disk" \
  "(base, build stage and both targets)"
