"""What the wheel carries besides the modules: py.typed in each shipped package, the contract's
.proto files beside their stubs, the bundled sample; and not the dev-only packages."""

from __future__ import annotations

import pytest

from testkit.paths import REPO_ROOT

pytestmark = pytest.mark.process  # builds a wheel: `make test`, not `make test-fast`

SHIPPED = ("absenteeism", "penguins", "etl_job", "feature_service", "clients")
# Each data set's contract package: its stubs with the .proto files they were generated from.
CONTRACTS = ("absenteeism/v1", "penguins/v1")


@pytest.mark.parametrize("package", SHIPPED)
def test_each_shipped_package_is_typed(built_wheel, package):
    assert f"{package}/py.typed" in built_wheel.names()


@pytest.mark.parametrize("contract", CONTRACTS)
def test_the_proto_files_ship_beside_their_stubs(built_wheel, contract):
    protos = sorted((REPO_ROOT / "protos" / contract).glob("*.proto"))
    assert protos
    for proto in protos:
        stem = proto.name.removesuffix(".proto")
        for name in (proto.name, f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"):
            assert f"{contract}/{name}" in built_wheel.names()
        assert built_wheel.read(f"{contract}/{proto.name}") == proto.read_text()
    assert f"{contract}/__init__.py" in built_wheel.names()


def test_the_sample_data_ships(built_wheel):
    assert "penguins/data/penguins-raw.csv" in built_wheel.names()  # --dataset penguins without --input
    samples = sorted(p.name for p in (REPO_ROOT / "etl_job" / "sample_data").glob("*.csv"))
    assert samples
    for name in samples:
        assert f"etl_job/sample_data/{name}" in built_wheel.names()


def test_the_page_templates_ship(built_wheel):
    templates = sorted(p.name for p in (REPO_ROOT / "absenteeism" / "templates").glob("*.j2"))
    assert "run_report.html.j2" in templates
    for name in templates:
        assert f"absenteeism/templates/{name}" in built_wheel.names()


def test_dev_only_code_stays_out(built_wheel):
    tops = {name.split("/")[0] for name in built_wheel.names()}
    assert tops - {n for n in tops if n.endswith(".dist-info")} == set(SHIPPED)
    assert not any("/node/" in name or name.startswith("clients/node") for name in built_wheel.names())
