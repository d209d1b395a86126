"""The fast online path: same bits as the reference path, and compiled checks that accept and
reject exactly what pandera does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from hamilton.data_quality.base import DataValidationError

from absenteeism import absenteeism_schema, dataflow, features, parity
from absenteeism.compiled_checks import CompiledSchema, UnsupportedCheck, compile_check
from absenteeism.dataset import reader
from absenteeism.online import converters
from absenteeism.online import predictor as online
from absenteeism.online.fast import FastPredictor, float64_columns
from absenteeism.online.reference import ReferencePredictor
from absenteeism.v1 import raw_record_pb2
from testkit.bits import assert_same_bits
from testkit.paths import require_real_data
from testkit.records import VALID_ROW

SCHEMAS = [
    pa.SeriesSchema("int64", pa.Check.isin([0, 1]), nullable=False),
    pa.SeriesSchema("int64", pa.Check.isin([2, 5, 9]), nullable=False),
    pa.SeriesSchema("int64", pa.Check.in_range(16, 100), nullable=False),
    pa.SeriesSchema("float64", pa.Check.in_range(30.0, 250.0), nullable=False),
    pa.SeriesSchema("float64", pa.Check.in_range(0.0, 1.0, include_min=False, include_max=False), nullable=True),
    pa.SeriesSchema("float64", pa.Check(np.isfinite, element_wise=False, name="finite"), nullable=False),
    *[pa.SeriesSchema(c.dtype, c.check, nullable=False) for c in absenteeism_schema.RAW_COLUMNS],
]

SPECIAL_FLOATS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 16.0, 100.0, 30.0, 250.0, 1e-300, 0.5])


def pandera_passes(schema: pa.SeriesSchema, values: np.ndarray) -> bool:
    try:
        schema.validate(pd.Series(values), lazy=True)
    except pa.errors.SchemaErrors:
        return False
    return True


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: f"{s.dtype}-{s.checks}")
def test_compiled_schema_accepts_and_rejects_exactly_what_pandera_does(schema):
    compiled = CompiledSchema.from_pandera(schema)
    rng = np.random.default_rng(1)
    for trial in range(150):
        size = int(rng.integers(1, 6))
        if str(schema.dtype) == "int64":
            values = rng.integers(-3, 260, size=size).astype(np.int64)
            if trial % 3 == 0:
                values = rng.integers(0, 3, size=size).astype(np.int64)
        else:
            values = np.where(rng.random(size) < 0.4, rng.choice(SPECIAL_FLOATS, size=size),
                              rng.uniform(-10, 300, size=size))
        expected = pandera_passes(schema, values)
        assert (not compiled.failures(values)) == expected, values
        assert compiled.passes(values) == expected, values
        bounds = compiled.bounds()
        if bounds is not None and values.dtype == compiled.dtype:  # the one-pass form means the same
            assert bool(((values >= bounds.low) & (values <= bounds.high)).all()) == expected, values


def test_an_uncompilable_check_is_refused_at_boot():
    with pytest.raises(UnsupportedCheck):
        compile_check(pa.Check(lambda x: x > 0, element_wise=True), np.dtype("int64"))


def records(rows: list[dict]) -> list:
    return converters.frame_to_records(pd.DataFrame(rows))


def every_category_row() -> list[dict]:
    values = {"reason_for_absence": range(29), "month_of_absence": range(1, 13), "day_of_the_week": range(2, 7),
              "seasons": range(1, 5), "age": (16, 25, 40, 100), "pet": (0, 3), "son": (0, 2),
              "disciplinary_failure": (0, 1), "weight": (30.0, 250.0), "body_mass_index": (10.0, 70.0)}
    return [{**VALID_ROW, column: value} for column, options in values.items() for value in options]


def test_fast_and_reference_paths_give_identical_bits_row_by_row_and_in_batches(config):
    reference, fast = ReferencePredictor(config), FastPredictor(config)
    batch = records(every_category_row())
    expected = reference.predict(batch)
    for got in [fast.predict(batch)] + [None]:
        if got is None:
            singles = [fast.predict([r]) for r in batch]
            got = online.Predictions(np.vstack([s.features for s in singles]),
                                     np.concatenate([s.predictions for s in singles]))
        report = parity.compare(range(len(batch)), features.MODEL_FEATURES, expected.features,
                                expected.predictions, fast.feature_names, got.features, got.predictions)
        assert report.identical, report.summary()


def test_fast_path_reports_the_same_violations_as_the_reference(config):
    reference, fast = ReferencePredictor(config), FastPredictor(config)
    bad = records([VALID_ROW, {**VALID_ROW, "age": 200, "seasons": 0},
                   {**VALID_ROW, "son": None, "pet": -1}, {**VALID_ROW, "height": float("inf")}])
    bad[1].weight = float("nan")  # a set field holding NaN (a null cell in a frame leaves the field unset)
    with pytest.raises(online.InvalidRecords) as from_reference:
        reference.predict(bad)
    with pytest.raises(online.InvalidRecords) as from_fast:
        fast.predict(bad)
    as_tuples = [[(v.row, v.column, v.rule, repr(v.value)) for v in e.value.violations]
                 for e in (from_reference, from_fast)]
    assert as_tuples[0] == as_tuples[1]
    assert {(row, column, rule) for row, column, rule, _ in as_tuples[1]} == {
        (1, "age", "in_range(16, 100)"), (1, "seasons", "isin([1, 2, 3, 4])"), (1, "weight", "not_nullable"),
        (2, "son", "required"), (2, "pet", "in_range(0, 50)"), (3, "height", "in_range(120.0, 230.0)")}


def test_fast_path_enforces_the_feature_checks_of_the_module(config, monkeypatch):
    # A feature body that breaks its declared check must fail the request, as with the driver: the
    # node's function is swapped before the fast path plans its steps.
    node = dataflow.feature_driver().graph.nodes["has_pet_raw"]
    monkeypatch.setattr(node, "_callable", lambda pet: (pet * 0 + 2).astype("int64"))
    fast = FastPredictor(config)
    for batch in (records([VALID_ROW]), records([VALID_ROW] * 3)):
        with pytest.raises(DataValidationError, match="has_pet"):
            fast.predict(batch)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_a_non_finite_standardized_age_fails_on_the_fast_path(config):
    fast = FastPredictor(config)
    fast.aggregates["age_std_dev"] = 0.0  # as if the config had a zero standard deviation
    with pytest.raises(DataValidationError, match="age_zero_mean_unit_variance"):
        fast.predict(records([VALID_ROW]))


def test_fast_path_executes_every_function_of_the_module_and_each_of_its_checks(config):
    steps = {s.name: s for s in FastPredictor(config).steps}
    for feature in (*features.MODEL_FEATURES, *features.GUARDS):
        assert steps[f"{feature}_raw"].call is getattr(features, feature)  # the module's own function
        checked = steps[feature]
        assert checked.inputs == (f"{feature}_raw",)
        assert [type(c.validator.original).__name__ for c in checked.checks] == ["PanderaSeriesSchemaValidator"]
    assert not {"age_mean", "age_std_dev"} & set(steps)  # aggregates come from the config




def valid_records(path: Path) -> list:
    return converters.frame_to_records(reader.read_valid(path))


@pytest.mark.parametrize("source", ["sample", "real"])
def test_fast_path_equals_the_reference_path_on_every_row_of_a_data_set(trained_config, source):
    path = trained_config.source if source == "sample" else require_real_data()
    records = valid_records(path)
    config_ = trained_config.config
    reference, fast = ReferencePredictor(config_), FastPredictor(config_)
    expected = reference.predict(records)  # one driver run over all rows
    singles = [fast.predict([record]) for record in records]  # the server's Predict, one row at a time
    got = online.Predictions(np.vstack([s.features for s in singles]), np.concatenate([s.predictions for s in singles]))
    report = parity.compare(range(len(records)), features.MODEL_FEATURES, expected.features, expected.predictions,
                            fast.feature_names, got.features, got.predictions)
    assert report.identical and report.rows_compared == len(records) > 700, report.summary()


def test_records_to_matrix_finds_exactly_the_unset_fields():
    """Presence is read from encoded sizes; compare with asking every field, on random records."""
    rng = np.random.default_rng(5)
    names = absenteeism_schema.RAW_COLUMN_NAMES
    int_values = [0, 1, -1, 127, 128, 16383, 16384, 2 ** 21, 2 ** 28, 2 ** 31 - 1, -2 ** 31]
    float_values = [0.0, -0.0, 1.5, float("nan"), float("inf"), -3.25]
    records_ = []
    for _ in range(3000):
        record = raw_record_pb2.RawRecord()
        for column in absenteeism_schema.RAW_COLUMNS:
            if rng.random() < 0.08:
                continue  # unset
            options = int_values if column.dtype == "int64" else float_values
            setattr(record, column.name, options[int(rng.integers(len(options)))])
        records_.append(record)
    matrix, missing = converters.records_to_matrix(records_)
    expected = sorted((i, name) for i, r in enumerate(records_) for name in names if not r.HasField(name))
    assert sorted((v.row, v.column) for v in missing) == expected
    assert len(expected) > 1000
    for i, record in enumerate(records_[:200]):
        for j, name in enumerate(names):
            value = getattr(record, name)
            assert (np.isnan(matrix[i, j]) and np.isnan(value)) or matrix[i, j] == value


def test_one_record_reads_as_it_does_among_others():
    """A Predict call's record goes through records_to_matrix's one-record path: the same matrix row
    and the same missing fields as the batch's vectorised path gives it."""
    rng = np.random.default_rng(7)
    names = absenteeism_schema.RAW_COLUMN_NAMES
    complete = records([VALID_ROW])[0]
    for k in range(300):
        record = raw_record_pb2.RawRecord()
        record.CopyFrom(complete)
        for name in names:
            if rng.random() < 0.05 * (k % 3):  # a third complete, the others missing some fields
                record.ClearField(name)
        alone, missing_alone = converters.records_to_matrix([record])
        among, missing_among = converters.records_to_matrix([complete, record, complete])
        assert_same_bits(alone[0], among[1])
        assert [(v.column, v.rule) for v in missing_alone] == [(v.column, v.rule) for v in missing_among]
        assert [v.row for v in missing_alone] == [0] * len(missing_alone)
        assert {v.column for v in missing_alone} == {name for name in names if not record.HasField(name)}


def test_matrix_to_arrays_gives_each_column_its_own_cast():
    records_ = records([VALID_ROW, {**VALID_ROW, "age": 57, "height": 201.5}, {**VALID_ROW, "son": 3}])
    for rows in (records_[:1], records_):
        matrix, _ = converters.records_to_matrix(rows)
        arrays = converters.matrix_to_arrays(matrix)
        assert list(arrays) == list(absenteeism_schema.RAW_COLUMN_NAMES)  # in column order
        for j, (name, array) in enumerate(arrays.items()):
            expected = matrix[:, j].astype(converters._layout().numpy_dtypes[name])
            assert array.dtype == expected.dtype and array.flags.c_contiguous
            assert_same_bits(array, expected)


@pytest.mark.parametrize("rows", [1, 5])
def test_float64_columns_is_column_stack_cast_to_float64(rows):
    rng = np.random.default_rng(rows)
    kinds = [np.int8, np.int64, np.uint64, np.bool_, np.float32, np.float64]
    columns = [(rng.integers(-100, 2 ** 40, rows) if kind is not np.bool_ else rng.integers(0, 2, rows)).astype(kind)
               for kind in kinds] + [rng.standard_normal(rows), np.full(rows, np.nan)]
    for chosen in (columns, columns[:1], columns[1:2] * 3):
        matrix = float64_columns(chosen, rows)
        expected = np.column_stack(chosen).astype(np.float64)
        assert matrix.dtype == np.float64 and matrix.flags.c_contiguous and matrix.shape == expected.shape
        assert_same_bits(matrix, expected)
    # Anything else takes column_stack itself: a Series, text, a scalar for one row.
    for odd in ([pd.Series(columns[1]), columns[5]], [columns[1].astype(object), columns[5]]):
        assert_same_bits(float64_columns(odd, rows), np.column_stack(odd).astype(np.float64))
    if rows == 1:
        assert_same_bits(float64_columns([np.float64(2.5), columns[1]], 1), np.array([[2.5, columns[1][0]]]))


def test_a_node_that_cannot_be_planned_is_named_and_refused_at_boot(config, monkeypatch):
    from absenteeism import config_io, dataflow
    from absenteeism.online import fast
    from feature_service import verified_config

    given = {*absenteeism_schema.RAW_COLUMN_NAMES, *dataflow.aggregate_names()}
    with pytest.raises(fast.UnplannableNode, match=r"node \w+ needs 'age', which is neither a raw record field"):
        fast.plan(features.MODEL_FEATURES, given - {"age"})
    # At boot: the server refuses the config with the planner's message, never serves another plan.
    real_plan = fast.plan
    monkeypatch.setattr(fast, "plan", lambda outputs, given: real_plan(outputs, given - {"age"}))
    with pytest.raises(config_io.ConfigError, match=r"cannot build the fast predictor .*needs 'age'"):
        verified_config.verified_predictor(config, "fast")
