# syntax=docker/dockerfile:1
#
# One Dockerfile, two runtime targets that share every layer but their venv:
#   --target etl     the batch job:  python -m etl_job run ...   (exits 0/1/2/3, 143 stopped)
#                    the project's core install + its [dask] extra (--engine dask, dask scheduler/worker)
#   --target server  the gRPC server: python -m feature_service serve  (the default target)
#                    the core install only: no Dask, no graphviz, no build tools
# See docs/container.md for docker build/run, and container/smoke_test.sh for the podman build
# that CI runs offline (debootstrapped base image, host-downloaded wheels, --network none).

# The base only needs python3 with venv. The smoke test passes a locally debootstrapped Debian
# bookworm here; that image has python3 at /usr/bin, the official one at /usr/local/bin, so every
# step below calls `python3` from PATH or the venv, never a fixed interpreter path.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# build: builds the project wheel (and any dependency that only ships an sdist) and installs the
# core, from wheels only, into a self-contained venv at /opt/venv; venv-etl adds the [dask] extra.
FROM ${BASE_IMAGE} AS build

# PIP_NO_INDEX=1 (a build arg) makes the build fully offline: every wheel must then be in
# container/wheelhouse/. Left at 0, missing wheels come from the package index.
ARG PIP_NO_INDEX=0
ENV PIP_NO_INDEX=${PIP_NO_INDEX} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python3 -m venv /opt/venv

WORKDIR /src
COPY container/wheelhouse/ /wheelhouse/
COPY pyproject.toml ./

# 1. The dependencies, in a layer of their own that only pyproject.toml (and the wheelhouse) can
#    invalidate, so a code change rebuilds in seconds: wheels into /wheels (built here if a
#    dependency ships only an sdist), then installed from /wheels alone (--no-index). The venv is
#    trimmed of the test suites and C headers that numpy/pandas/pyarrow ship
#    (about 55 MB) that nothing imports at run time; the smoke test's ETL runs and Predict call
#    prove that. The .pyc files pip compiled stay: with PYTHONDONTWRITEBYTECODE at run time they
#    are what keeps start-up fast (the job and the server would otherwise recompile pandas on
#    every start).
#    /tmp/requirements.txt is the core ([project] dependencies), /tmp/dask.txt the [dask] extra;
#    both are resolved together into /wheels, the core alone is installed here.
RUN python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
open("/tmp/dask.txt", "w").write("\n".join(p["optional-dependencies"]["dask"])); \
print("\n".join(p["dependencies"]))' > /tmp/requirements.txt \
 && /opt/venv/bin/python -m pip wheel --find-links /wheelhouse --wheel-dir /wheels \
      -r /tmp/requirements.txt -r /tmp/dask.txt \
 && /opt/venv/bin/python -m pip install --no-index --find-links /wheels -r /tmp/requirements.txt \
 && for pkg in numpy pandas pyarrow; do \
      find /opt/venv/lib/python3*/site-packages/"$pkg" -depth -type d \
        \( -name tests -o -name include \) -exec rm -rf {} + ; \
    done

# 2. The project: its wheel, installed without dependencies (all present), checked for
#    consistency. setup.cfg moves setuptools' build folder out of build/.
COPY setup.cfg ./
COPY absenteeism/ absenteeism/
COPY etl_job/ etl_job/
COPY feature_service/ feature_service/
COPY penguins/ penguins/
RUN /opt/venv/bin/python -m pip wheel --no-deps --find-links /wheelhouse --wheel-dir /wheels . \
 && /opt/venv/bin/python -m pip install --no-index --no-deps /wheels/absenteeism_serving-*.whl \
 && /opt/venv/bin/python -m pip check

# 3. Each target's venv; pip itself leaves both (the runtime image installs nothing).
#    The server's: the core install as it is.
FROM build AS venv-server
RUN /opt/venv/bin/python -m pip uninstall --yes pip

#    The job's: the core + the [dask] extra (the Dask engine, the `dask scheduler`/`dask worker` CLI).
FROM build AS venv-etl
RUN /opt/venv/bin/python -m pip install --no-index --find-links /wheels -r /tmp/dask.txt \
 && /opt/venv/bin/python -m pip check \
 && /opt/venv/bin/python -m pip uninstall --yes pip

# ---------------------------------------------------------------------------------------------
# runtime: the shared base of both targets. No compiler, no pip, no source tree: each target
# adds its venv only.
FROM ${BASE_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HAMILTON_TELEMETRY_ENABLED=false \
    HOME=/tmp

# A fixed numeric uid/gid, so that orchestrators can verify runAsNonRoot and volume owners
# can be set ahead of time (chown 10001 on the host).
RUN groupadd --gid 10001 app \
 && useradd --no-log-init --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app \
 && mkdir -p /data/input /data/output /config \
 && chown app:app /data/output

COPY container/healthcheck.py container/entrypoint.py /opt/container/

WORKDIR /data
USER 10001:10001

# ---------------------------------------------------------------------------------------------
# etl: the batch job. Input and outputs are volumes; the defaults run the bundled sample.
FROM runtime AS etl
COPY --from=venv-etl /opt/venv /opt/venv
# Exec form, and through entrypoint.py, which runs `python -m etl_job` with a SIGTERM handler: as
# PID 1 the job would otherwise ignore `docker stop` until the kill timeout. Stopped: exit 143.
ENTRYPOINT ["/opt/venv/bin/python", "/opt/container/entrypoint.py", "etl_job"]
CMD ["run", "--output-dir", "/data/output"]

# ---------------------------------------------------------------------------------------------
# server: the gRPC prediction service (the default target, so it is last).
FROM runtime AS server
COPY --from=venv-server /opt/venv /opt/venv
ENV FEATURE_SERVICE_HOST=0.0.0.0 \
    FEATURE_SERVICE_PORT=50051 \
    FEATURE_SERVICE_METRICS_PORT=9464 \
    FEATURE_SERVICE_CONFIG=/config/serving_config.pb
EXPOSE 50051 9464
# Exec form: python is PID 1 and receives SIGTERM itself; the server drains and exits 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/opt/venv/bin/python", "/opt/container/healthcheck.py"]
ENTRYPOINT ["/opt/venv/bin/python", "-m", "feature_service"]
CMD ["serve"]
