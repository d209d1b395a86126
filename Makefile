# One venv for everything; `make run` and `make test` are the README's two commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= build

.PHONY: setup run etl serve test stubs lint-protos

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The main job on the bundled sample data, then the server on its config (Ctrl-C stops it).
run: serve

serve: etl
	$(PY) -m feature_service serve --config $(OUT)/serving_config.pb --host 127.0.0.1 --insecure

etl: setup
	$(PY) -m etl_job run --output-dir $(OUT)

test: setup
	$(PY) -m pytest

# Regenerate the protobuf/gRPC stubs from protos/ (never edit absenteeism/v1/ by hand).
stubs: setup
	$(PY) tools/generate_stubs.py

lint-protos: setup
	$(VENV)/bin/buf lint
