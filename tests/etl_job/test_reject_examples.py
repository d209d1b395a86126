"""The Tally keeps a few offending values per (column, rule) for the reports: at most
EXAMPLES_PER_RULE distinct ones, the first in row order, the same whether chunks are added to one
Tally (local engine) or parts are tallied apart and merged in order (Dask engine)."""

from __future__ import annotations

import pandas as pd

from absenteeism.raw_schema import Violation
from etl_job.validate import EXAMPLES_PER_RULE, Tally, Validation

RULE = "in_range(16, 100)"


def _validation(values: list[str | None], first_row: int) -> Validation:
    violations = tuple(Violation(first_row + i, "age", RULE, value) for i, value in enumerate(values))
    return Validation(pd.DataFrame(), violations, len(values))


CHUNKS = [["130", "130", "7"], [None, "200", "300"], ["7", "999"]]


def test_examples_are_the_first_distinct_values_and_bounded():
    tally = Tally()
    for i, chunk in enumerate(CHUNKS):
        tally.add(_validation(chunk, 10 * i), "records.csv")
    assert EXAMPLES_PER_RULE == 3
    assert tally.examples == {("age", RULE): ["130", "7", None]}
    assert tally.by_column_rule[("age", RULE)] == 8  # every violation still counted


def test_parts_merged_in_order_keep_the_same_examples_as_one_tally():
    whole = Tally()
    merged = Tally()
    for i, chunk in enumerate(CHUNKS):
        whole.add(_validation(chunk, 10 * i), "records.csv")
        part = Tally()
        part.add(_validation(chunk, 10 * i), "records.csv")
        merged.merge(part)
    assert merged == whole
