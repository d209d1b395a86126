"""The feature module is the whole definition: an edit of absenteeism/features.py alone (a new scalar
or vector aggregate, @parameterize, @extract_columns, @check_output at any importance, @tag, helper
functions, a changed feature list and guards) works in the job, in the server (both predictors),
through parity and in the DAG pictures, with no other file touched.

Each variant is a copy of the project's packages with only features.py changed; the job runs on the
real data set, the server boots on its config, and every accepted row goes through gRPC and is
compared with the training set bit for bit, the new features by name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from absenteeism import config_io
from absenteeism.v1 import serving_config_pb2
from testkit.paths import REPO_ROOT
from testkit.run_outputs import assert_same_outputs
from testkit.server_process import ServerProcess

ROOT = REPO_ROOT
PACKAGES = ("absenteeism", "etl_job", "feature_service", "clients")

IMPORTS = """
from hamilton.function_modifiers import check_output, extract_columns, parameterize, source, value
"""

SCALAR_AGGREGATES = '''

@tag(stage=AGGREGATE)
def distance_mean(distance_from_residence_to_work: pd.Series) -> float:
    """Mean distance from residence to work over the accepted training rows."""
    return float(distance_from_residence_to_work.mean())


@tag(stage=AGGREGATE)
def weight_per_bmi_mean(weight: pd.Series, body_mass_index: pd.Series) -> float:
    """Mean of weight / body mass index (two raw columns) over the accepted training rows."""
    return float((weight / body_mass_index).mean())


@_expect(_STANDARDIZED)
def distance_centered(distance_from_residence_to_work: pd.Series, distance_mean: float) -> pd.Series:
    """Distance from residence to work minus its training mean."""
    return distance_from_residence_to_work - distance_mean


@_expect(_STANDARDIZED)
def weight_per_bmi_ratio(weight: pd.Series, body_mass_index: pd.Series, weight_per_bmi_mean: float) -> pd.Series:
    """Weight / body mass index relative to its training mean."""
    return (weight / body_mass_index) / weight_per_bmi_mean
'''

VECTOR_AGGREGATE = '''

@tag(stage=AGGREGATE)
def age_quartile_edges(age: pd.Series) -> np.ndarray:
    """The 25th, 50th and 75th percentile of age over the accepted training rows."""
    return np.quantile(np.asarray(age, dtype=np.float64), [0.25, 0.5, 0.75])


@_expect(_FLAG)
def age_in_top_quartile(age: pd.Series, age_quartile_edges: np.ndarray) -> pd.Series:
    """1 when the employee is older than the training set's 75th age percentile."""
    return (age > age_quartile_edges[2]).astype("int64")
'''

PARAMETERIZED = '''

@parameterize(
    bmi_over_30={"limit": value(30.0)},
    bmi_over_35={"limit": value(35.0)},
)
@_expect(_FLAG)
def bmi_over(body_mass_index: pd.Series, limit: float) -> pd.Series:
    """1 when the body mass index is above {limit}."""
    return (body_mass_index > limit).astype("int64")


@parameterize(
    weight_per_height={"numerator": source("weight"), "denominator": source("height")},
    hit_target_per_service={"numerator": source("hit_target"), "denominator": source("transportation_expense")},
)
def share(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """{numerator} divided by {denominator} (plus one, so that a zero never divides)."""
    return numerator / (denominator + 1.0)
'''

EXTRACTED_AND_CHECKED = '''


def _band(values: pd.Series, low: float, high: float) -> pd.Series:
    # A helper of the module: no Hamilton node (its name starts with an underscore).
    return ((values >= low) & (values < high)).astype("int64")


@extract_columns("bmi_underweight", "bmi_healthy", "bmi_obese")
@tag(owner="occupational-health")
def bmi_bands(body_mass_index: pd.Series) -> pd.DataFrame:
    """Body mass index bands, one column each."""
    return pd.DataFrame({"bmi_underweight": _band(body_mass_index, 0.0, 18.5),
                         "bmi_healthy": _band(body_mass_index, 18.5, 25.0),
                         "bmi_obese": _band(body_mass_index, 30.0, 1000.0)})


@check_output(range=(0.0, 10.0), importance="warn")
@tag(owner="hr")
def service_share_of_age(service_time: pd.Series, age: pd.Series) -> pd.Series:
    """Years of service per year of age (Hamilton's own range validator, importance warn)."""
    return service_time / age
'''

NEW_FEATURES = {
    "scalar": ("distance_centered", "weight_per_bmi_ratio"),
    "vector": ("age_in_top_quartile",),
    "parameterize": ("bmi_over_30", "bmi_over_35", "weight_per_height", "hit_target_per_service"),
    "extract_and_check": ("bmi_underweight", "bmi_healthy", "bmi_obese", "service_share_of_age"),
}
NEW_AGGREGATES = {"scalar": ("distance_mean", "weight_per_bmi_mean"), "vector": ("age_quartile_edges",)}
BODIES = {"scalar": SCALAR_AGGREGATES, "vector": VECTOR_AGGREGATE, "parameterize": PARAMETERIZED,
          "extract_and_check": EXTRACTED_AND_CHECKED}

# The feature list and guards: has_pet leaves the model, is_summer moves to the end, one guard more.
LIST_AND_GUARDS = '''

@_expect(pa.SeriesSchema("int64", pa.Check.isin([0, 1]), nullable=False))
def reason_groups_at_most_one(
    reason_unrecorded: pd.Series, reason_is_disease: pd.Series, reason_is_consultation: pd.Series
) -> pd.Series:
    """Guard, not a model feature: a reason falls in at most one group."""
    return reason_unrecorded + reason_is_disease + reason_is_consultation


MODEL_FEATURES = tuple(name for name in MODEL_FEATURES if name not in ("has_pet", "is_summer")) + ("is_summer",)
GUARDS = (*GUARDS, "reason_groups_at_most_one")
'''


def variant_source(parts: list[str], list_and_guards: bool = False) -> str:
    """features.py with the given parts appended, and their features added to MODEL_FEATURES."""
    source = (ROOT / "absenteeism" / "features.py").read_text()
    source = source.replace("from hamilton.function_modifiers import check_output, tag\n",
                            "from hamilton.function_modifiers import check_output, tag\n" + IMPORTS.lstrip())
    new = [name for part in parts for name in NEW_FEATURES[part]]
    source += "".join(BODIES[part] for part in parts)
    source += f"\n\nMODEL_FEATURES = (*MODEL_FEATURES, {', '.join(repr(n) for n in new)}{',' if new else ''})\n"
    if list_and_guards:
        source += LIST_AND_GUARDS
    return source


def copy_project(folder: Path, features_source: str) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, folder / package, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    (folder / "absenteeism" / "features.py").write_text(features_source)
    return folder


def run_in(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=folder, env=_env(folder), capture_output=True, text=True,
                            timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _env(folder: Path) -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(folder)}


VARIANTS = {
    "scalar aggregate": (["scalar"], False),
    "vector aggregate": (["vector"], False),
    "parameterize": (["parameterize"], False),
    "extract_columns, check_output, tag, helper": (["extract_and_check"], False),
    "feature list and guards": ([], True),
    "all together": (["scalar", "vector", "parameterize", "extract_and_check"], True),
}

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_feature_module_edit_alone_runs_end_to_end_with_bitwise_parity(variant, tmp_path, real_data):
    parts, list_and_guards = VARIANTS[variant]
    project = copy_project(tmp_path / "project", variant_source(parts, list_and_guards))
    out = tmp_path / "out"
    run_in(project, "-m", "etl_job", "run", "--input", str(real_data), "--output-dir", str(out))

    config = config_io.read_config(out / "serving_config.pb")
    training_set = pd.read_parquet(out / "training_set.parquet")
    new_features = [name for part in parts for name in NEW_FEATURES[part]]
    assert set(new_features) <= set(config.feature_names) and set(new_features) <= set(training_set.columns)
    new_aggregates = [name for part in parts for name in NEW_AGGREGATES.get(part, ())]
    assert set(new_aggregates) <= set(config.statistics.values)
    report = json.loads((out / "report.json").read_text())
    assert set(report["statistics"]["aggregates"]) == set(config.statistics.values)
    if "vector" in parts:
        edges = config.statistics.values["age_quartile_edges"].vector.values
        ages = training_set_ages(training_set, real_data)
        assert list(edges) == np.quantile(ages.astype(np.float64), [0.25, 0.5, 0.75]).tolist()
        assert report["statistics"]["aggregates"]["age_quartile_edges"] == list(edges)
    if list_and_guards:
        assert "has_pet" not in config.feature_names and config.feature_names[-1] == "is_summer"

    for predictor in ("fast", "reference"):
        with ServerProcess(out / "serving_config.pb", "--predictor", predictor, env=_env(project), cwd=project) as server:
            modes = "predict,batch" if predictor == "reference" else "predict,batch,stream"
            result = run_in(project, "-m", "clients", "parity", "--target", server.target, "--insecure",
                            "--training-set", str(out / "training_set.parquet"), "--input", str(real_data),
                            "--modes", modes, "--no-progress", "--report", str(tmp_path / f"{predictor}.json"),
                            check=False)
            assert result.returncode == 0, result.stdout + result.stderr
            compared = json.loads((tmp_path / f"{predictor}.json").read_text())
            for mode in modes.split(","):
                assert compared[mode]["rows_compared"] == len(training_set) == 737
                assert compared[mode]["identical"] is True

    # The server of the unchanged project refuses this config: the feature module differs.
    refused = ServerProcess(out / "serving_config.pb")
    assert refused.run_to_exit() == 78
    assert any("different feature module" in line for line in refused.logs)


def training_set_ages(training_set: pd.DataFrame, source: Path) -> np.ndarray:
    from absenteeism.dataset import reader

    cells = reader.extract(source).cells
    return cells.loc[training_set["source_row"], "age"].astype("int64").to_numpy()


def test_the_dag_pictures_show_a_variant_module(tmp_path):
    project = copy_project(tmp_path / "project", variant_source(list(BODIES), list_and_guards=True))
    result = run_in(project, "-m", "etl_job", "dag", "--output-dir", str(tmp_path / "dag"), check=False)
    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed")
    assert result.returncode == 0, result.stderr
    pictures = list((tmp_path / "dag").iterdir())
    assert pictures
    assert {p.name for p in pictures} >= {"offline_dag.png", "offline_dag.dot", "online_dag.dot"}
    text = (tmp_path / "dag" / "offline_dag.dot").read_text()
    for name in ("age_quartile_edges", "bmi_over_30", "bmi_obese", "distance_centered"):
        assert name in text


@pytest.mark.parametrize("body,complaint", [
    ("return int(age.max())", "returned a value of type int"),
    ("return np.vstack([age.to_numpy(), age.to_numpy()]).astype(np.float64)", "returned an array of shape"),
    ("return float('nan')", "not finite"),
    ("return np.array([1.0, np.inf])", "not finite"),
])
def test_an_aggregate_that_cannot_travel_stops_the_job_naming_the_node(body, complaint, tmp_path, real_data):
    source = variant_source([]) + f'''

@tag(stage=AGGREGATE)
def age_oddity(age: pd.Series) -> float:
    """An aggregate that returns something a config cannot carry."""
    {body}
'''
    project = copy_project(tmp_path / "project", source)
    out = tmp_path / "out"
    result = run_in(project, "-m", "etl_job", "run", "--input", str(real_data), "--output-dir", str(out),
                    check=False)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "age_oddity" in last and complaint in last and "a float or a 1-D array of floats" in last
    assert not (out / "serving_config.pb").exists()


def test_a_config_of_the_unchanged_module_is_refused_by_a_variant_server(tmp_path, trained_config):
    project = copy_project(tmp_path / "project", variant_source(["scalar"]))
    server = ServerProcess(trained_config.path, env=_env(project), cwd=project)
    assert server.run_to_exit() == 78
    assert any("different feature module" in line for line in server.logs)


def test_the_config_carries_every_aggregate_by_name(trained_config):
    statistics = trained_config.config.statistics
    assert {name: carried.WhichOneof("kind") for name, carried in statistics.values.items()} == {
        "age_mean": "scalar", "age_std_dev": "scalar"}
    assert isinstance(statistics, serving_config_pb2.AggregateStatistics)


def test_a_variant_module_gives_the_same_outputs_whatever_the_chunks_and_the_engine(tmp_path, real_data):
    """Every modifier and both kinds of aggregate, read in chunks of 50 rows, and on a Dask
    LocalCluster in parts of 4 kB: the outputs of one run over the whole file, bit for bit."""

    project = copy_project(tmp_path / "project", variant_source(list(BODIES), list_and_guards=True))
    runs = {"whole": (), "chunks": ("--chunk-rows", "50"),
            "dask": ("--engine", "dask", "--workers", "2", "--part-bytes", "4000", "--chunk-rows", "50")}
    for name, flags in runs.items():
        run_in(project, "-m", "etl_job", "run", "--input", str(real_data), "--output-dir", str(tmp_path / name),
               "--no-progress", *flags)
    assert "age_quartile_edges" in config_io.read_config(tmp_path / "dask" / "serving_config.pb").statistics.values
    assert_same_outputs(tmp_path / "whole", tmp_path / "dask")
    assert_same_outputs(tmp_path / "whole", tmp_path / "chunks", engine="local")
