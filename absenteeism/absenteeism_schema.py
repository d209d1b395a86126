"""The raw record of the absenteeism data set (UCI "Absenteeism at work", Martiniano et al. 2012):
its 20 request fields, its label column and its CSV dialect.

Ranges follow the data set's documentation with generous physical bounds where it gives none.
"""

from __future__ import annotations

import pandera.pandas as pa

from absenteeism.raw_schema import CsvDialect, RawColumn, RawTable


def _ints(low: int, high: int) -> list[int]:
    return list(range(low, high + 1))


RAW_COLUMNS: tuple[RawColumn, ...] = (
    # The contract (raw_record.proto) promises 1..10000; the real data set has ids 1..36.
    RawColumn("id", "ID", "int64", pa.Check.in_range(1, 10_000)),
    # 0 is "no reason recorded" in the data set; 1..21 are ICD chapters, 22..28 other codes.
    RawColumn("reason_for_absence", "Reason for absence", "int64", pa.Check.isin(_ints(0, 28))),
    RawColumn("month_of_absence", "Month of absence", "int64", pa.Check.isin(_ints(1, 12))),
    RawColumn("day_of_the_week", "Day of the week", "int64", pa.Check.isin(_ints(2, 6))),
    RawColumn("seasons", "Seasons", "int64", pa.Check.isin(_ints(1, 4))),
    RawColumn("transportation_expense", "Transportation expense", "int64", pa.Check.in_range(0, 1000)),
    RawColumn("distance_from_residence_to_work", "Distance from Residence to Work", "int64", pa.Check.in_range(0, 200)),
    RawColumn("service_time", "Service time", "int64", pa.Check.in_range(0, 60)),
    RawColumn("age", "Age", "int64", pa.Check.in_range(16, 100)),
    # The original header has a trailing space (readers strip headers before mapping them).
    RawColumn("work_load_average_per_day", "Work load Average/day ", "float64", pa.Check.in_range(0.0, 1000.0)),
    RawColumn("hit_target", "Hit target", "int64", pa.Check.in_range(0, 100)),
    RawColumn("disciplinary_failure", "Disciplinary failure", "int64", pa.Check.isin([0, 1])),
    RawColumn("education", "Education", "int64", pa.Check.isin(_ints(1, 4))),
    RawColumn("son", "Son", "int64", pa.Check.in_range(0, 20)),
    RawColumn("social_drinker", "Social drinker", "int64", pa.Check.isin([0, 1])),
    RawColumn("social_smoker", "Social smoker", "int64", pa.Check.isin([0, 1])),
    RawColumn("pet", "Pet", "int64", pa.Check.in_range(0, 50)),
    RawColumn("weight", "Weight", "float64", pa.Check.in_range(30.0, 250.0)),
    RawColumn("height", "Height", "float64", pa.Check.in_range(120.0, 230.0)),
    RawColumn("body_mass_index", "Body mass index", "float64", pa.Check.in_range(10.0, 70.0)),
)

# The label is read by the batch job only; it is never part of a request.
LABEL = RawColumn("absenteeism_time_in_hours", "Absenteeism time in hours", "int64",
                  pa.Check.in_range(0, 744))  # at most the hours in a month


# As UCI ships it: semicolon-separated, CRLF line ends, original header names (one with a trailing
# space: headers are stripped before mapping).
TABLE = RawTable(RAW_COLUMNS, (LABEL,), CsvDialect(delimiter=";", line_end="\r\n"))

RAW_COLUMN_NAMES: tuple[str, ...] = TABLE.column_names
RAW_DTYPES: dict[str, str] = {c.name: c.dtype for c in RAW_COLUMNS}
