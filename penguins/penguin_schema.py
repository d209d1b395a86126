"""The raw record of the Palmer penguins table (Gorman, Williams and Fraser 2014, CC0): its request
fields, its two label columns and its CSV dialect, as the table's authors publish it
(penguins-raw.csv: comma-separated, quoted cells that hold commas, "NA" for a missing value, dates
as YYYY-MM-DD, Yes/No).

Columns of the file that no field names (studyName, Region, Stage, Individual ID, ...) are ignored.
"""

from __future__ import annotations

import pandera.pandas as pa

from absenteeism.raw_schema import CsvDialect, RawColumn, RawTable, parse_date

ISLANDS = ["Biscoe", "Dream", "Torgersen"]
SEXES = ["FEMALE", "MALE"]
SPECIES = ["Adelie Penguin (Pygoscelis adeliae)", "Chinstrap penguin (Pygoscelis antarctica)",
           "Gentoo penguin (Pygoscelis papua)"]
# A date travels as text and is checked as whole days since 1970-01-01.
FIRST_DATE, LAST_DATE = parse_date("2000-01-01"), parse_date("2030-12-31")

RAW_COLUMNS: tuple[RawColumn, ...] = (
    RawColumn("sample_number", "Sample Number", "int64", pa.Check.in_range(1, 1_000_000)),
    RawColumn("island", "Island", "str", pa.Check.isin(ISLANDS)),
    RawColumn("clutch_completion", "Clutch Completion", "bool"),
    RawColumn("date_egg", "Date Egg", "date", pa.Check.in_range(FIRST_DATE, LAST_DATE)),
    RawColumn("culmen_length_mm", "Culmen Length (mm)", "float64", pa.Check.in_range(20.0, 70.0), nullable=True),
    RawColumn("culmen_depth_mm", "Culmen Depth (mm)", "float64", pa.Check.in_range(10.0, 25.0), nullable=True),
    RawColumn("flipper_length_mm", "Flipper Length (mm)", "int64", pa.Check.in_range(150, 250), nullable=True),
    RawColumn("sex", "Sex", "str", pa.Check.isin(SEXES), nullable=True),
    RawColumn("delta_15_n", "Delta 15 N (o/oo)", "float64", pa.Check.in_range(5.0, 12.0), nullable=True),
    RawColumn("delta_13_c", "Delta 13 C (o/oo)", "float64", pa.Check.in_range(-30.0, -20.0), nullable=True),
    RawColumn("comments", "Comments", "str", nullable=True),  # free text: not a model input
)

# Read by the batch job only, never part of a request; a training row needs both.
LABELS: tuple[RawColumn, ...] = (
    RawColumn("body_mass_g", "Body Mass (g)", "int64", pa.Check.in_range(1000, 10_000)),
    RawColumn("species", "Species", "str", pa.Check.isin(SPECIES)),
)

TABLE = RawTable(RAW_COLUMNS, LABELS, CsvDialect(delimiter=",", line_end="\n", missing_values=("", "NA"),
                                                 true_values=("Yes",), false_values=("No",)))
