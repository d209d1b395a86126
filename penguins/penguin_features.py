"""The features of the penguins model, written as absenteeism's are (see absenteeism/features.py):
one Hamilton function per feature, bodies that mean the same on a pandas Series and a numpy array.

What this data set adds: a text category one-hot (island), a missing value as a flag (sex, culmen
length) and imputed by an aggregate computed offline (the training medians), a bool (clutch
completion) and a feature from a date (the month the egg was laid). A missing value is NaN in a
number column, and NaN (a frame) or None (a request's arrays) in a text column: `pd.isna` is true
and a comparison with a category false for both, so the same bodies hold either way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from hamilton.function_modifiers import check_output, tag

from penguins.penguin_schema import SPECIES

AGGREGATE = "analyze"
LABEL_STAGE = "label"
DEFAULT_LABEL = "body_mass"

_FLAG = pa.SeriesSchema("int64", pa.Check.isin([0, 1]), nullable=False)
_FINITE = pa.SeriesSchema("float64", pa.Check(np.isfinite, element_wise=False, name="finite"), nullable=False)


def _expect(schema: pa.SeriesSchema):
    return check_output(schema=schema, importance="fail")


def _filled(values, fill: float):
    """`values` with each missing (NaN) value replaced by `fill`."""
    filled = values.astype("float64")  # a copy
    filled[pd.isna(values)] = fill
    return filled


# ---- analyze: aggregate statistics (offline only; carried in ServingConfig) -----------------


@tag(stage=AGGREGATE)
def culmen_length_median(culmen_length_mm: pd.Series) -> float:
    """Median culmen length over the accepted training rows that have one."""
    return float(culmen_length_mm.median())


@tag(stage=AGGREGATE)
def flipper_length_median(flipper_length_mm: pd.Series) -> float:
    """Median flipper length over the accepted training rows that have one."""
    return float(flipper_length_mm.median())


# ---- labels (offline only) ---------------------------------------------------------------------


@tag(stage=LABEL_STAGE, task="regression")
def body_mass(body_mass_g: pd.Series) -> pd.Series:
    """Body mass in grams."""
    return body_mass_g


@tag(stage=LABEL_STAGE, task="multiclass_classification")
@_expect(pa.SeriesSchema("int64", pa.Check.isin([0, 1, 2]), nullable=False))
def species_index(species: pd.Series) -> pd.Series:
    """The species as its position in the schema's list (0 Adelie, 1 Chinstrap, 2 Gentoo)."""
    return (species == SPECIES[1]).astype("int64") + 2 * (species == SPECIES[2]).astype("int64")


# ---- transform: per-row features ---------------------------------------------------------------


@_expect(_FLAG)
def island_biscoe(island: pd.Series) -> pd.Series:
    """1 when the bird was sampled on Biscoe."""
    return (island == "Biscoe").astype("int64")


@_expect(_FLAG)
def island_dream(island: pd.Series) -> pd.Series:
    """1 when the bird was sampled on Dream."""
    return (island == "Dream").astype("int64")


@_expect(_FLAG)
def island_torgersen(island: pd.Series) -> pd.Series:
    """1 when the bird was sampled on Torgersen."""
    return (island == "Torgersen").astype("int64")


@_expect(_FLAG)
def is_male(sex: pd.Series) -> pd.Series:
    """1 when the sex was recorded as male."""
    return (sex == "MALE").astype("int64")


@_expect(_FLAG)
def sex_missing(sex: pd.Series) -> pd.Series:
    """1 when no sex was recorded."""
    return ((sex != "MALE") & (sex != "FEMALE")).astype("int64")


@_expect(_FLAG)
def culmen_length_missing(culmen_length_mm: pd.Series) -> pd.Series:
    """1 when the culmen length was not measured."""
    return pd.isna(culmen_length_mm).astype("int64")


@_expect(_FINITE)
def culmen_length_filled(culmen_length_mm: pd.Series, culmen_length_median: float) -> pd.Series:
    """Culmen length in mm; the training median where it was not measured."""
    return _filled(culmen_length_mm, culmen_length_median)


@_expect(_FINITE)
def flipper_length_filled(flipper_length_mm: pd.Series, flipper_length_median: float) -> pd.Series:
    """Flipper length in mm; the training median where it was not measured."""
    return _filled(flipper_length_mm, flipper_length_median)


@_expect(_FLAG)
def clutch_completed(clutch_completion: pd.Series) -> pd.Series:
    """1 when the nest reached full clutch (two eggs)."""
    return clutch_completion.astype("int64")


@_expect(pa.SeriesSchema("int64", pa.Check.in_range(1, 12), nullable=False))
def egg_month(date_egg: pd.Series) -> pd.Series:
    """The month (1..12) the first egg was laid: the civil calendar from whole days since
    1970-01-01, in integer arithmetic (H. Hinnant's days-to-civil algorithm)."""
    shifted = date_egg + 719468
    era = shifted // 146097
    day_of_era = shifted - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153  # 0 is March
    return month_index + 3 - 12 * (month_index >= 10).astype("int64")


@_expect(_FLAG)
def egg_in_november(egg_month: pd.Series) -> pd.Series:
    """1 when the first egg was laid in November (the season's early nests)."""
    return (egg_month == 11).astype("int64")


@_expect(pa.SeriesSchema("int64", pa.Check.isin([1]), nullable=False))
def island_one_hot_total(island_biscoe: pd.Series, island_dream: pd.Series, island_torgersen: pd.Series) -> pd.Series:
    """Guard, not a model feature: exactly one island column is set on every row."""
    return island_biscoe + island_dream + island_torgersen


MODEL_FEATURES: tuple[str, ...] = (
    "island_biscoe",
    "island_dream",
    "island_torgersen",
    "is_male",
    "sex_missing",
    "culmen_length_missing",
    "culmen_length_filled",
    "flipper_length_filled",
    "clutch_completed",
    "egg_in_november",
)

GUARDS: tuple[str, ...] = ("island_one_hot_total",)
