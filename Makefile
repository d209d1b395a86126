# One venv, two installs: `make run` installs the core (what the job and the server run on),
# `make setup` (and everything that tests or lints) the core with every extra: .[dev,dask,viz,models].
# `make run` and `make test` are the README's two commands, in either order on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= build

RUN_INSTALL := $(VENV)/.installed-run
DEV_INSTALL := $(VENV)/.installed
CONFIG := $(OUT)/serving_config.pb
# What the config is made of: the core's and the job's code, and the bundled sample the job reads.
CONFIG_INPUTS := $(shell find absenteeism etl_job -type f \( -name '*.py' -o -name '*.csv' \) -not -path '*/__pycache__/*')

.PHONY: setup run etl serve test test-fast lint stubs lint-protos

setup: $(DEV_INSTALL)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(DEV_INSTALL): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,dask,viz,models]'
	touch $@

$(RUN_INSTALL): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

# The main job on the bundled sample, then the server on its config (Ctrl-C stops it).
run: serve

serve: etl
	$(PY) -m feature_service serve --config $(CONFIG) --host 127.0.0.1 --insecure

# The config is rebuilt only when the code, the sample or the dependencies changed since the last run.
etl: $(CONFIG)

$(CONFIG): $(CONFIG_INPUTS) pyproject.toml | $(RUN_INSTALL)
	$(PY) -m etl_job run --output-dir $(OUT)

# The whole suite: what CI runs.
test: setup
	$(PY) -m pytest

# The edit-test loop: unit and in-process tests, no server, cluster or container (a few minutes).
test-fast: setup
	$(PY) -m pytest -m "not process and not slow"

# ruff and mypy as configured in pyproject.toml, and buf's lint of the protos.
lint: setup lint-protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Regenerate the protobuf/gRPC stubs from protos/ (never edit absenteeism/v1/ by hand).
stubs: setup
	$(PY) tools/generate_stubs.py

lint-protos: setup
	$(VENV)/bin/buf lint
