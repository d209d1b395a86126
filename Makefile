# One venv for everything; `make run` and `make test` are the README's two commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= build

.PHONY: setup run etl serve test test-fast lint stubs lint-protos

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,dask,viz]'
	touch $@

# The main job on the bundled sample data, then the server on its config (Ctrl-C stops it).
run: serve

serve: etl
	$(PY) -m feature_service serve --config $(OUT)/serving_config.pb --host 127.0.0.1 --insecure

etl: setup
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
