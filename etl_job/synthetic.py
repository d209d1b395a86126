"""Realistic synthetic absenteeism records in the data set's own file format, any row count, seeded.

Shaped after the UCI "Absenteeism at work" data (740 records, 36 employees, 2007-2010):
- employees have fixed attributes (age, height, body mass index and the weight they imply, education,
  children, pets, drinking, smoking, commute distance and the transport expense it drives), and some
  are absent far more often than others;
- each absence gets a date (month, and the data set's season coding, which follows the equinoxes and
  solstices), a weekday, the work load and hit target of its period, and a reason code drawn from
  the real frequencies;
- the hours absent depend on the reason (consultations are short, certified diseases take days),
  disciplinary failures (recorded as reason 0 with 0 hours), Monday, age, children and drinking,
  with a heavy tail of multi-day absences.

Everything is vectorized numpy: a million rows take a second or two. The same seed gives the same
file, byte for byte. `bad_fraction` injects the quirks real exports have (month 0, an age out of
range, an empty cell, a non-numeric cell) so the job's quarantine is exercised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from absenteeism.absenteeism_schema import LABEL, RAW_COLUMNS, TABLE
from absenteeism.dataset import atomic

ROWS_PER_EMPLOYEE = 20  # the real data has ~20 absences per employee


def _max_employee_id() -> int:
    check = next(c for c in RAW_COLUMNS if c.name == "id").check
    statistics = check.statistics if check is not None else None
    if statistics is None:
        raise ValueError("the raw schema's id check has no statistics (max_value)")
    return int(statistics["max_value"])


# Employees are numbered 1..n, at most the raw schema's largest id.
MAX_EMPLOYEE_ID = _max_employee_id()

# Real frequencies (counts in the UCI file) of reasons 1..28 (20 never occurs), months, weekdays.
_REASON_COUNTS = {1: 16, 2: 1, 3: 1, 4: 2, 5: 3, 6: 8, 7: 15, 8: 6, 9: 4, 10: 25, 11: 26, 12: 8, 13: 55,
                  14: 19, 15: 2, 16: 3, 17: 1, 18: 21, 19: 40, 21: 6, 22: 38, 23: 149, 24: 3, 25: 31,
                  26: 33, 27: 69, 28: 112}
_MONTH_COUNTS = np.array([50, 72, 87, 53, 64, 54, 67, 54, 53, 71, 63, 49], dtype=float)
_WEEKDAY_COUNTS = np.array([161, 154, 156, 125, 144], dtype=float)  # Monday (2) .. Friday (6)
# Visits and check-ups: hours, not days.
_SHORT_REASONS = np.array([22, 23, 25, 27, 28])
_SHORT_HOURS = np.array([1, 2, 3, 4, 8])
_SHORT_HOURS_P = np.array([0.18, 0.38, 0.22, 0.12, 0.10])
_YEARS = 3  # periods with their own work load and hit target: years x 12 months
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])

BAD_KINDS = ("month_zero", "age_out_of_range", "empty_cell", "non_numeric_cell")

# The bundled sample (etl_job/sample_data/absenteeism_sample.csv) is exactly
# `generate(SAMPLE_ROWS, SAMPLE_SEED, SAMPLE_BAD_FRACTION)`; the seed gives it one bad row of every kind.
SAMPLE_ROWS, SAMPLE_SEED, SAMPLE_BAD_FRACTION = 2000, 20260101, 0.004


@dataclass
class Records:
    """Generated records: typed columns (snake_case names, raw columns then the label) and the cells
    that quirks replaced with text (None for an empty cell), by column: (row positions, cells)."""

    columns: dict[str, np.ndarray]
    cells: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns["id"])


CHUNK_ROWS = 1_000_000  # rows generated (and held) at a time


def generate(rows: int, seed: int, bad_fraction: float = 0.0) -> Records:
    """`rows` synthetic records; about `bad_fraction` of them carry one quirk each (in memory:
    for files of many millions of rows, `write_chunks(generate_chunks(...))` streams instead)."""
    parts = list(generate_chunks(rows, seed, bad_fraction))
    return parts[0] if len(parts) == 1 else _concat(parts)


def generate_chunks(rows: int, seed: int, bad_fraction: float = 0.0, chunk_rows: int = CHUNK_ROWS
                    ) -> Iterator[Records]:
    """The records of `generate`, `chunk_rows` at a time. Up to `chunk_rows` rows the one chunk is
    exactly what earlier versions generated; beyond, chunk k > 0 draws its rows from its own
    generator, seeded with (seed, k), so the output stays a function of (rows, seed, bad_fraction).
    Employees and the work load of each period are drawn once and shared by every chunk."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError(f"bad_fraction must be within [0, 1], got {bad_fraction}")
    rng = np.random.default_rng(seed)
    n_employees = employee_count(rows)
    staff = _employees(rng, n_employees)
    # Some employees are absent much more often than others (real counts range 1..113).
    frequency = rng.lognormal(0.0, 1.0, n_employees)
    periods = None
    for k, start in enumerate(range(0, max(rows, 1), chunk_rows)):
        stop = min(rows, start + chunk_rows)
        chunk_rng = rng if k == 0 else np.random.default_rng([seed, k])
        # Quirks spread so that the total is round(rows * bad_fraction), as in one piece.
        bad = round(stop * bad_fraction) - round(start * bad_fraction)
        records, periods = _records(chunk_rng, staff, frequency, stop - start, periods, bad)
        yield records


def employee_count(rows: int) -> int:
    """About ROWS_PER_EMPLOYEE rows per employee, at least the real data's 36, ids within the raw schema."""
    return int(min(MAX_EMPLOYEE_ID, max(36, rows // ROWS_PER_EMPLOYEE)))


def _records(rng: np.random.Generator, staff: dict[str, np.ndarray], frequency: np.ndarray, rows: int,
             periods: tuple[np.ndarray, np.ndarray] | None, bad: int
             ) -> tuple[Records, tuple[np.ndarray, np.ndarray]]:
    """One chunk of rows. `periods` (work load, hit target per period) is drawn here when None."""
    employee = rng.choice(len(frequency), size=rows, p=frequency / frequency.sum())
    columns: dict[str, np.ndarray] = {"id": staff["id"][employee]}

    month = rng.choice(12, size=rows, p=_MONTH_COUNTS / _MONTH_COUNTS.sum()) + 1
    day = (rng.random(rows) * _DAYS_IN_MONTH[month - 1]).astype(np.int64) + 1
    weekday = rng.choice(5, size=rows, p=_WEEKDAY_COUNTS / _WEEKDAY_COUNTS.sum()) + 2
    period = rng.integers(0, _YEARS, rows) * 12 + (month - 1)
    if periods is None:
        work_load = np.round(np.clip(rng.normal(271.5, 39.0, _YEARS * 12), 205.0, 380.0), 3)
        hit_target = np.clip(np.round(rng.normal(94.6, 3.8, _YEARS * 12)), 81, 100).astype(np.int64)
        periods = (work_load, hit_target)
    work_load, hit_target = periods

    # Disciplinary failures are recorded with reason 0 and no hours; a few employees collect most.
    discipline_p = 0.054 * staff["discipline_risk"][employee]
    disciplinary = (rng.random(rows) < discipline_p).astype(np.int64)
    reason_codes = np.array(list(_REASON_COUNTS))
    reason_p = np.array(list(_REASON_COUNTS.values()), dtype=float)
    reason = rng.choice(reason_codes, size=rows, p=reason_p / reason_p.sum())
    reason = np.where(rng.random(rows) < 0.004, 0, reason)  # absences recorded without a reason
    reason = np.where(disciplinary == 1, 0, reason)

    columns.update(
        reason_for_absence=reason,
        month_of_absence=month,
        day_of_the_week=weekday,
        seasons=_season(month, day),
        **{name: staff[name][employee] for name in (
            "transportation_expense", "distance_from_residence_to_work", "service_time", "age")},
        work_load_average_per_day=work_load[period],
        hit_target=hit_target[period],
        disciplinary_failure=disciplinary,
        **{name: staff[name][employee] for name in (
            "education", "son", "social_drinker", "social_smoker", "pet", "weight", "height",
            "body_mass_index")},
    )
    columns[LABEL.name] = _hours(rng, columns, staff["proneness"][employee])
    records = Records(columns)
    if bad > 0 and rows > 0:
        _inject_quirks(rng, records, bad)
    return records, periods


def _concat(parts: list[Records]) -> Records:
    columns = {name: np.concatenate([p.columns[name] for p in parts]) for name in parts[0].columns}
    cells: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    offset = 0
    for part in parts:
        for name, (positions, values) in part.cells.items():
            old = cells.get(name, (np.empty(0, np.int64), np.empty(0, object)))
            cells[name] = (np.concatenate([old[0], positions + offset]), np.concatenate([old[1], values]))
        offset += len(part)
    return Records(columns, cells)


def _employees(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Fixed attributes per employee, drawn around the real data's distributions."""
    age = np.clip(np.round(rng.normal(37.0, 7.0, n)), 19, 62).astype(np.int64)
    height = np.clip(np.round(rng.normal(172.0, 6.0, n)), 155, 196).astype(np.int64)
    bmi = np.clip(np.round(rng.normal(26.7, 4.3, n)), 18, 40).astype(np.int64)
    distance = np.clip(np.round(rng.gamma(4.0, 7.5, n)), 1, 90).astype(np.int64)
    has_pet = rng.random(n) < 0.4
    return {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "age": age,
        # Started work at 18 at the earliest.
        "service_time": np.clip(np.round(rng.normal(12.5, 4.4, n)), 1, age - 18).astype(np.int64),
        "height": height,
        "body_mass_index": bmi,
        "weight": np.round(bmi * (height / 100.0) ** 2).astype(np.int64),
        "distance_from_residence_to_work": distance,
        # Longer commutes cost more.
        "transportation_expense": np.clip(np.round(120 + 3.2 * distance + rng.normal(0, 45, n)), 100, 400
                                          ).astype(np.int64),
        "education": rng.choice(4, size=n, p=[0.79, 0.06, 0.14, 0.01]) + 1,
        "son": np.minimum(rng.poisson(1.0, n), 4).astype(np.int64),
        "social_drinker": (rng.random(n) < 0.57).astype(np.int64),
        "social_smoker": (rng.random(n) < 0.075).astype(np.int64),
        "pet": np.where(has_pet, np.minimum(rng.geometric(0.5, n), 8), 0).astype(np.int64),
        "discipline_risk": rng.gamma(0.5, 2.0, n),  # mean 1, most near 0, a few high
        "proneness": rng.lognormal(0.0, 0.25, n),  # how long this employee tends to stay away
    }


def _season(month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The data set's season code: 1 from the June solstice, 4 from the September equinox,
    2 from the December solstice, 3 from the March equinox (as months 3, 6, 9, 12 show in it)."""
    quarter_start = {3: 3, 6: 1, 9: 4, 12: 2}  # the code that starts on the 21st of that month
    before = {3: 2, 6: 3, 9: 1, 12: 4}
    code = np.select(
        [np.isin(month, [1, 2]), np.isin(month, [4, 5]), np.isin(month, [7, 8]), np.isin(month, [10, 11])],
        [2, 3, 1, 4], default=0)
    for m in (3, 6, 9, 12):
        on = month == m
        code = np.where(on, np.where(day >= 21, quarter_start[m], before[m]), code)
    return code.astype(np.int64)


def _hours(rng: np.random.Generator, c: dict[str, np.ndarray], proneness: np.ndarray) -> np.ndarray:
    rows = len(c["reason_for_absence"])
    reason = c["reason_for_absence"]
    # Severity: longer absences on Mondays and in the summer flu season (Dec-Feb), for older staff,
    # parents and drinkers; shorter ones late in the week.
    month = c["month_of_absence"]
    severity = proneness * np.exp(
        0.35 * (c["day_of_the_week"] == 2) - 0.25 * (c["day_of_the_week"] >= 5)
        + 0.2 * ((month == 12) | (month <= 2)) + 0.03 * (c["age"] - 37) + 0.25 * (c["son"] > 0)
        + 0.1 * c["social_drinker"])

    short = np.isin(reason, _SHORT_REASONS)
    short_hours = rng.choice(_SHORT_HOURS, size=rows, p=_SHORT_HOURS_P)
    short_hours = np.minimum(np.round(short_hours * np.sqrt(severity)), 8)

    # Diseases and the rest: a working day, sometimes part of one, sometimes many (Pareto tail, up
    # to 15 days); the more severe, the likelier a long one.
    multi_day = rng.random(rows) < np.clip(0.12 * severity**2, 0, 0.9)
    days = np.minimum(1 + np.floor(rng.pareto(2.2, rows) * 2.0 * severity), 15)
    partial = rng.random(rows) < 0.05
    long_hours = np.where(multi_day, 8 * days, np.where(partial, rng.integers(1, 8, rows), 8))

    hours = np.where(short, short_hours, long_hours)
    hours = np.where(reason == 0, 0, np.maximum(hours, 1))
    return np.clip(hours, 0, 120).astype(np.int64)


def _inject_quirks(rng: np.random.Generator, records: Records, count: int) -> None:
    """Breaks `count` distinct rows, each with one quirk of a real export."""
    columns = records.columns
    rows = len(columns["id"])
    victims = np.sort(rng.choice(rows, size=min(count, rows), replace=False))
    kinds = rng.integers(0, len(BAD_KINDS), len(victims))
    names = [c.name for c in RAW_COLUMNS]
    targets = rng.integers(0, len(names), len(victims))

    columns["month_of_absence"][victims[kinds == 0]] = 0
    out_of_range = victims[kinds == 1]
    columns["age"][out_of_range] = rng.choice([7, 12, 130, 999], size=len(out_of_range))
    junk = np.array(["n/a", "?", "abc", "3,5", "#VALUE!"], dtype=object)
    for j, name in enumerate(names):
        empty = victims[(kinds == 2) & (targets == j)]
        text = victims[(kinds == 3) & (targets == j)]
        if len(empty) or len(text):
            positions = np.concatenate([empty, text])
            cells = np.concatenate([np.full(len(empty), None, dtype=object), rng.choice(junk, size=len(text))])
            order = np.argsort(positions, kind="stable")
            records.cells[name] = (positions[order], cells[order])


def _text(values: np.ndarray) -> pa.Array:
    """Integers as "12", floats as Python's repr ("239.554", "205.0"), the way pandas' to_csv spells them."""
    if values.dtype.kind == "f":
        # Few distinct values (one per work-load period): format each once.
        distinct, where = np.unique(values, return_inverse=True)
        return pa.array(np.array([repr(float(v)) for v in distinct.tolist()], dtype=object)[where], type=pa.string())
    return pa.array(values).cast(pa.string())


def to_table(records: Records, headers: bool = True) -> pa.Table:
    """An Arrow table of the records, named by the CSV headers (cells as the CSV spells them) or by
    the snake_case names (typed columns; a column with a quirk cell is all strings)."""
    by_name = {c.name: c for c in (*RAW_COLUMNS, LABEL)}
    arrays, names = [], []
    for name, values in records.columns.items():
        if name in records.cells or (headers and values.dtype.kind == "f"):
            array = _text(values)
            if name in records.cells:
                positions, cells = records.cells[name]
                mask = np.zeros(len(values), dtype=bool)
                mask[positions] = True
                array = pc.replace_with_mask(array, pa.array(mask), pa.array(cells, type=pa.string()))
        else:
            array = pa.array(values)
        arrays.append(array)
        names.append(by_name[name].csv_header if headers else name)
    return pa.Table.from_arrays(arrays, names=names)


def to_frame(records: Records) -> pd.DataFrame:
    """The records as a DataFrame with snake_case columns (quirk columns as strings, None if empty)."""
    table = to_table(records, headers=False)
    return pd.DataFrame({name: (table[name].to_numpy(zero_copy_only=False) if name in records.cells
                                else records.columns[name]) for name in table.column_names})


def write(records: Records, path: Path) -> None:
    """Writes the records atomically: `.csv` in the data set's format, `.parquet` with snake_case names."""
    write_chunks([records], path)


def write_chunks(chunks: Iterable[Records], path: Path, all_text: bool = False) -> None:
    """Writes chunks of records atomically as one file, one chunk in memory at a time.

    The CSV is what `raw_writers.write_csv` writes (semicolons, CRLF, the original headers, the
    work-load header with its trailing space), produced by Arrow's writer because pandas' `to_csv`
    takes about five seconds per million rows. Parquet has typed columns, except a column with a
    quirk cell, which is text; one schema must hold for every chunk, so `all_text` makes every
    column text (for several chunks with quirks: the first chunk cannot know the others' quirks).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: unknown output format (expected .csv or .parquet)")
    with atomic.atomic_path(path) as tmp:
        writer = None
        try:
            for records in chunks:
                text = suffix == ".csv" or all_text
                table = to_table(records, headers=text)  # with headers: floats spelled as the CSV does
                if text:
                    # Text in every chunk: one schema, and the digits Arrow's writer gives numbers.
                    table = table.cast(pa.schema([(name, pa.string()) for name in table.column_names]))
                if suffix == ".csv":
                    table = table.rename_columns(
                        [h + (" " if h == "Work load Average/day" else "") for h in table.column_names])
                elif all_text:
                    table = table.rename_columns(list(records.columns))
                if writer is None:
                    writer = (pa_csv.CSVWriter(tmp, table.schema, write_options=_CSV_OPTIONS) if suffix == ".csv"
                              else pq.ParquetWriter(tmp, table.schema))
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


_CSV_OPTIONS = pa_csv.WriteOptions(delimiter=TABLE.dialect.delimiter, eol=TABLE.dialect.line_end, quoting_style="none",
                                   quoting_header="none", batch_size=1 << 16)
