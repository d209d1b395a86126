"""Raw column kinds beyond numbers: text, bool, dates and missing values, read the same way from a
file (the job) and from a request (the server), and categories mapped to "other" where declared."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from absenteeism import data_sets
from absenteeism.dataset import cell_parsing
from absenteeism.online import converters
from absenteeism.raw_schema import DATE_RULE, REQUIRED, RawColumn, parse_date


@pytest.fixture
def penguins():
    yield data_sets.activate("penguins")
    data_sets.activate(data_sets.DEFAULT)


def test_each_kind_has_its_frame_dtype_and_a_missing_value_makes_numbers_float():
    kinds = {("int64", False): "int64", ("int64", True): "float64", ("float64", True): "float64",
             ("bool", False): "bool", ("bool", True): "float64", ("date", False): "int64", ("date", True): "float64",
             ("str", False): "str", ("str", True): "str"}
    for (kind, nullable), dtype in kinds.items():
        assert RawColumn("x", "X", kind, nullable=nullable).frame_dtype == dtype, (kind, nullable)
    with pytest.raises(ValueError, match="kind 'text' is not one of"):
        RawColumn("x", "X", "text")
    with pytest.raises(ValueError, match="other='Other' is not one of its categories"):
        RawColumn("x", "X", "str", pa.Check.isin(["a", "b"]), other="Other")


@pytest.mark.parametrize("text,days", [("1970-01-01", 0), ("2008-02-29", 13938), (" 2000-01-01 ", 10957),
                                       ("2007-02-29", None), ("2008-13-01", None), ("20080101", None), ("", None),
                                       ("2008-1-1", None), ("2008-W47-4", None), ("2008-11-20T00", None)])
def test_a_date_is_an_iso_calendar_date_and_nothing_else(text, days):
    assert parse_date(text) == days


def test_a_file_and_a_request_give_the_same_typed_values_and_the_same_refusals(penguins):
    cells = pd.DataFrame({"sample_number": ["7", "8", "NA"], "island": ["Dream", "Atlantis", "Biscoe"],
                          "clutch_completion": ["Yes", "No", "maybe"], "date_egg": ["2008-11-20", "2009-02-30", ""],
                          "culmen_length_mm": ["NA", "39.5", ""], "culmen_depth_mm": ["18.7", "NA", "17"],
                          "flipper_length_mm": ["181", "NA", "190"], "sex": ["NA", "FEMALE", "MALE"],
                          "delta_15_n": ["NA", "8.9", "9"], "delta_13_c": ["-24.7", "NA", "-25"],
                          "comments": ["Ünïcode, \"quoted\"", "NA", ""]}, index=[1, 2, 3])
    typed, violations = cell_parsing.parse_columns(cells)
    assert {(v.row, v.column, v.rule) for v in violations} == {
        (2, "date_egg", DATE_RULE), (3, "sample_number", REQUIRED), (3, "clutch_completion", "bool(Yes/No)"),
        (3, "date_egg", REQUIRED)}
    first = typed.loc[1]
    assert np.isnan(first["culmen_length_mm"]) and pd.isna(first["sex"]) and first["clutch_completion"]
    assert first["date_egg"] == parse_date("2008-11-20") and first["comments"] == 'Ünïcode, "quoted"'
    # The same row as a request: absent fields where the file said NA.
    record = converters.raw_record(sample_number=7, island="Dream", clutch_completion=True, date_egg="2008-11-20",
                                   culmen_depth_mm=18.7, flipper_length_mm=181, delta_13_c=-24.7,
                                   comments='Ünïcode, "quoted"')
    arrays, missing = converters.records_to_arrays([record])
    assert len(missing) == 0
    for name, values in arrays.items():
        expected = typed.loc[[1], name].to_numpy()
        if values.dtype == object:
            assert [None if pd.isna(v) else v for v in expected] == values.tolist(), name
        else:
            assert values.dtype == expected.dtype and values.tobytes() == expected.tobytes(), name


def test_a_category_outside_the_list_is_read_as_other_where_the_schema_says_so(penguins):
    table = penguins.table
    island = dataclasses.replace(table.by_name["island"], check=pa.Check.isin(["Biscoe", "Dream", "Torgersen", "other"]),
                                 other="other")
    columns = tuple(island if c.name == "island" else c for c in table.columns)
    variant = dataclasses.replace(penguins, table=dataclasses.replace(table, columns=columns))
    data_sets.activate(variant)
    typed, violations = cell_parsing.parse_columns(pd.DataFrame({"island": ["Atlantis", "Dream", "NA"]}))
    assert typed["island"].tolist()[:2] == ["other", "Dream"]
    assert [(v.row, v.rule) for v in violations] == [(2, REQUIRED)]  # a missing value is no category
    arrays, _ = converters.records_to_arrays([converters.raw_record(island="Atlantis"),
                                              converters.raw_record(island="Dream")])
    assert arrays["island"].tolist() == ["other", "Dream"]
    found = variant.table.find_violations(pd.DataFrame({"island": pd.array(["other", "Atlantis"], dtype="str")}))
    assert [(v.row, v.value) for v in found if v.column == "island"] == [(1, "Atlantis")]  # "other" is a category
