"""The features of the absenteeism model: the only place a feature is defined.

One Apache Hamilton function per feature: the function's name is the feature's name, its
parameters are its inputs (raw columns or aggregates), its docstring says what it means, and its
`@check_output` pandera schema is the expectation it must meet (importance "fail": a violation
stops the run, online as offline).

Two phases, as in tf.Transform:
- analyze: functions tagged `stage="analyze"` compute full-pass aggregate statistics over the
  accepted training rows. They run offline only; the results travel in ServingConfig.statistics.
- transform: every other function is per-row; the aggregates enter as overrides, offline (whole
  data set or one partition) exactly as online (the records of one request).
- label: functions tagged `stage="label"` (and `task=` "regression", "binary_classification" or
  "multiclass_classification") are what a model can learn to predict, computed from the raw label
  column offline only; `python -m etl_job run --label NODE` chooses one (default: DEFAULT_LABEL).

Feature bodies use only operations that mean the same on a pandas Series and a numpy array
(arithmetic, comparisons, `|`/`&`, `.astype("int64")`), so the same functions run on whole columns
and on tiny arrays, with bit-identical results.

One-hot columns compare against the fixed category list of the raw schema, never against the
values present in the data, so one row and a million rows give the same columns, names, order and
dtype. A category value outside that list never reaches this module: the raw schema refuses the
record first (the job quarantines it, the server answers INVALID_ARGUMENT). Should one slip
through, the one-hot check "exactly one category is set" fails the run instead of emitting a row
of zeros.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from hamilton.function_modifiers import check_output, tag

AGGREGATE = "analyze"  # the stage tag value of aggregate nodes, shipped in ServingConfig
LABEL_STAGE = "label"  # the stage tag value of the label nodes (offline only)
DEFAULT_LABEL = "absence_hours"

_FLAG = pa.SeriesSchema("int64", pa.Check.isin([0, 1]), nullable=False)
_STANDARDIZED = pa.SeriesSchema(
    "float64",
    pa.Check(np.isfinite, element_wise=False, name="finite"),
    nullable=False,
)


def _expect(schema: pa.SeriesSchema):
    return check_output(schema=schema, importance="fail")


# ---- analyze: aggregate statistics (offline only; carried in ServingConfig) -----------------


@tag(stage=AGGREGATE)
def age_mean(age: pd.Series) -> float:
    """Mean age over the accepted training rows."""
    return float(age.mean())


@tag(stage=AGGREGATE)
def age_std_dev(age: pd.Series) -> float:
    """Population standard deviation (ddof=0) of age over the accepted training rows."""
    return float(age.std(ddof=0))


# ---- labels: what a model learns to predict (offline only; the server never computes one) -----


@tag(stage=LABEL_STAGE, task="regression")
def absence_hours(absenteeism_time_in_hours: pd.Series) -> pd.Series:
    """Hours of absence, as recorded: the regression label."""
    return absenteeism_time_in_hours


@tag(stage=LABEL_STAGE, task="binary_classification")
@_expect(_FLAG)
def long_absence(absenteeism_time_in_hours: pd.Series) -> pd.Series:
    """1 when the absence lasted more than 8 hours (more than a working day), else 0."""
    return (absenteeism_time_in_hours > 8).astype("int64")


# ---- transform: per-row features -------------------------------------------------------------


@_expect(_FLAG)
def is_summer(month_of_absence: pd.Series) -> pd.Series:
    """1 when the absence month is December, January or February, else 0."""
    return ((month_of_absence == 12) | (month_of_absence == 1) | (month_of_absence == 2)).astype("int64")


@_expect(_FLAG)
def has_pet(pet: pd.Series) -> pd.Series:
    """1 when the employee has at least one pet."""
    return (pet > 0).astype("int64")


@_expect(_FLAG)
def has_children(son: pd.Series) -> pd.Series:
    """1 when the employee has at least one child."""
    return (son > 0).astype("int64")


@_expect(_FLAG)
def has_disciplinary_failure(disciplinary_failure: pd.Series) -> pd.Series:
    """1 when the employee has a disciplinary failure on record."""
    return (disciplinary_failure == 1).astype("int64")


@_expect(_FLAG)
def reason_unrecorded(reason_for_absence: pd.Series) -> pd.Series:
    """1 when no reason was recorded for the absence (code 0)."""
    return (reason_for_absence == 0).astype("int64")


@_expect(_FLAG)
def reason_is_disease(reason_for_absence: pd.Series) -> pd.Series:
    """1 when the reason is a disease certified by ICD chapter (codes 1..21)."""
    return ((reason_for_absence >= 1) & (reason_for_absence <= 21)).astype("int64")


@_expect(_FLAG)
def reason_is_consultation(reason_for_absence: pd.Series) -> pd.Series:
    """1 when the absence was a follow-up, medical or dental consultation (codes 22, 23, 28)."""
    return ((reason_for_absence == 22) | (reason_for_absence == 23) | (reason_for_absence == 28)).astype("int64")


@_expect(_FLAG)
def day_of_the_week_2(day_of_the_week: pd.Series) -> pd.Series:
    """One-hot: the absence fell on a Monday."""
    return (day_of_the_week == 2).astype("int64")


@_expect(_FLAG)
def day_of_the_week_3(day_of_the_week: pd.Series) -> pd.Series:
    """One-hot: the absence fell on a Tuesday."""
    return (day_of_the_week == 3).astype("int64")


@_expect(_FLAG)
def day_of_the_week_4(day_of_the_week: pd.Series) -> pd.Series:
    """One-hot: the absence fell on a Wednesday."""
    return (day_of_the_week == 4).astype("int64")


@_expect(_FLAG)
def day_of_the_week_5(day_of_the_week: pd.Series) -> pd.Series:
    """One-hot: the absence fell on a Thursday."""
    return (day_of_the_week == 5).astype("int64")


@_expect(_FLAG)
def day_of_the_week_6(day_of_the_week: pd.Series) -> pd.Series:
    """One-hot: the absence fell on a Friday."""
    return (day_of_the_week == 6).astype("int64")


@_expect(_FLAG)
def seasons_1(seasons: pd.Series) -> pd.Series:
    """One-hot: season code 1."""
    return (seasons == 1).astype("int64")


@_expect(_FLAG)
def seasons_2(seasons: pd.Series) -> pd.Series:
    """One-hot: season code 2."""
    return (seasons == 2).astype("int64")


@_expect(_FLAG)
def seasons_3(seasons: pd.Series) -> pd.Series:
    """One-hot: season code 3."""
    return (seasons == 3).astype("int64")


@_expect(_FLAG)
def seasons_4(seasons: pd.Series) -> pd.Series:
    """One-hot: season code 4."""
    return (seasons == 4).astype("int64")


@_expect(_STANDARDIZED)
def age_zero_mean_unit_variance(age: pd.Series, age_mean: float, age_std_dev: float) -> pd.Series:
    """Age standardized with the training set's mean and population standard deviation."""
    return (age - age_mean) / age_std_dev


@_expect(pa.SeriesSchema("int64", pa.Check.isin([1]), nullable=False))
def day_of_the_week_one_hot_total(
    day_of_the_week_2: pd.Series,
    day_of_the_week_3: pd.Series,
    day_of_the_week_4: pd.Series,
    day_of_the_week_5: pd.Series,
    day_of_the_week_6: pd.Series,
) -> pd.Series:
    """Guard, not a model feature: exactly one day-of-week column is set on every row."""
    return day_of_the_week_2 + day_of_the_week_3 + day_of_the_week_4 + day_of_the_week_5 + day_of_the_week_6


@_expect(pa.SeriesSchema("int64", pa.Check.isin([1]), nullable=False))
def seasons_one_hot_total(
    seasons_1: pd.Series, seasons_2: pd.Series, seasons_3: pd.Series, seasons_4: pd.Series
) -> pd.Series:
    """Guard, not a model feature: exactly one season column is set on every row."""
    return seasons_1 + seasons_2 + seasons_3 + seasons_4


# ---- the model's inputs, defined once, in model order -----------------------------------------

MODEL_FEATURES: tuple[str, ...] = (
    "is_summer",
    "has_pet",
    "has_children",
    "day_of_the_week_2",
    "day_of_the_week_3",
    "day_of_the_week_4",
    "day_of_the_week_5",
    "day_of_the_week_6",
    "age_zero_mean_unit_variance",
    "seasons_1",
    "seasons_2",
    "seasons_3",
    "seasons_4",
    "has_disciplinary_failure",
    "reason_unrecorded",
    "reason_is_disease",
    "reason_is_consultation",
)

# Computed with the features on every run, offline and online, for their checks alone.
GUARDS: tuple[str, ...] = ("day_of_the_week_one_hot_total", "seasons_one_hot_total")
