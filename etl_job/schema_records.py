"""Records of any data set made from its raw schema alone: seeded files of CSV cells, with chosen
defects, and the edge records of its rules for tests that compare the server's predictors.

Nothing here knows a data set: every value follows a column's kind and rule (RawColumn):
- `isin`: a uniform pick of the allowed values;
- `in_range`: uniform within [min, max] (whole numbers for int64 and date columns; floats rounded to
  a few decimals, fewer for wider ranges, and written as their shortest text, which reads back as
  the very same float);
- no rule: a bool is 50/50, a free text (str) a few words from a pool that holds non-ASCII
  characters, commas, quotes and the dialect's delimiter (so the writer must quote), an int64 or a
  float64 within [0, 1000], a date within 2000-01-01..2030-12-31;
- a nullable column is missing in about NULL_FRACTION of the rows.
Another rule (greater_than, a custom function, ...) cannot be read: UnsupportedRule names the column.

Cells are text as the data set's files spell them: dates "YYYY-MM-DD", bools the dialect's first
true and false tokens, a missing cell the dialect's first non-empty missing token (else empty).
`bad_fraction` breaks about that share of the rows, one cell each (DEFECT_KINDS): the job must
reject exactly those rows. Everything is drawn from one numpy generator seeded with `seed`, column
by column, so the same arguments give the same cells, and files byte for byte.

Files: `write_csv` in the table's dialect; `write_parquet` the same text cells (not typed values:
a date stays "YYYY-MM-DD", a missing cell its token, a defect its text) in string columns named by
the snake_case field names. `edge_records` and `invalid_edge_records` are request dicts for tests.

Unlike etl_job.synthetic (absenteeism's realistic generator: employees, seasons, reasons), values
are independent and uniform: they exercise the schema, not a model.
"""

from __future__ import annotations

import csv
import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from absenteeism.dataset import atomic
from absenteeism.online import converters
from absenteeism.raw_schema import EPOCH, REQUIRED, CsvDialect, RawColumn, RawTable, rule_text

NULL_FRACTION = 0.1  # share of a nullable column's cells left missing

# A row's one defect: a value outside the column's rule (an unseen category, a number beyond the
# range, a date outside it), a required cell left empty (or the dialect's missing token), a cell
# that is no number, no calendar date, no bool of the dialect.
OUTSIDE_RULE, REQUIRED_EMPTY, NOT_A_NUMBER, NOT_A_DATE, NOT_A_BOOL = (
    "outside_rule", "required_empty", "not_a_number", "not_a_date", "not_a_bool")
DEFECT_KINDS = (OUTSIDE_RULE, REQUIRED_EMPTY, NOT_A_NUMBER, NOT_A_DATE, NOT_A_BOOL)

# Kinds of the rules invalid_edge_records breaks: the first word of the rule the job and the server
# name (rule_text's "isin([...])", "in_range(a, b)", raw_schema.DATE_RULE, raw_schema.REQUIRED).
ISIN_RULE, RANGE_RULE, DATE_RULE_KIND = "isin", "in_range", "date"

# Without a rule, numbers and dates are drawn from these ranges.
DEFAULT_NUMBER_RANGE = (0, 1000)
DEFAULT_DATE_RANGE = ((datetime.date(2000, 1, 1) - EPOCH).days, (datetime.date(2030, 12, 31) - EPOCH).days)

# Free text: one to three of these words. The dialect's delimiter is added as a word of its own.
_WORDS = ("Adult not sampled", "nest, 2 eggs", 'marked "B12"', "Ünïcode ✓", "café", "naïve", "Øresund",
          "日本語", "ok", "see notes: 3/4")
NON_ASCII_TEXT = 'Ünïcode, "quoted" ✓'  # the non-ASCII free text of edge_records

_NOT_NUMBERS = ("abc", "#VALUE!", "n/a", "3,5", "1..2", "12a")
_NOT_INTEGERS = ("2.5",)  # a number, but not a whole one
_NOT_DATES = ("2008-13-40", "2008-02-30", "11/11/2007", "2008-1-5", "soon")
_NOT_BOOLS = ("maybe", "2", "Y", "yes!")
_UNSEEN_CATEGORIES = ("Atlantis", "unknown", "ÜNSEEN, category")

_DATE_LOW, _DATE_HIGH = -719162, 2932896  # days of 0001-01-01 and 9999-12-31
_SAFE_INT = 2**62  # out-of-range whole numbers stay well inside int64


class UnsupportedRule(ValueError):
    """A column whose rule the generator cannot read (not isin, not in_range)."""


@dataclass(frozen=True)
class SchemaRecords:
    """Generated records: their cells, and the rows given a defect."""

    cells: pd.DataFrame  # text cells, columns named by csv_header (request fields, then labels), index 0..n-1
    # One line per broken row, by row: row (0-based position in `cells`), column (the field name),
    # kind (one of DEFECT_KINDS), cell (the text written).
    defects: pd.DataFrame

    @property
    def bad_rows(self) -> np.ndarray:
        """Positions (0-based) of the rows with a defect, ascending."""
        return self.defects["row"].to_numpy(dtype=np.int64)


def generate_records(table: RawTable, rows: int, seed: int, bad_fraction: float = 0.0) -> SchemaRecords:
    """`rows` records of `table` (request fields and labels) as CSV cells; round(rows *
    bad_fraction) of them, chosen at random, get one defect each. UnsupportedRule (before anything
    is drawn) when a column's rule is neither isin nor in_range."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError(f"bad_fraction must be within [0, 1], got {bad_fraction}")
    for column in table.all_columns:
        _domain(column)  # every rule is read before any value is drawn
    rng = np.random.default_rng(seed)
    dialect = table.dialect
    columns: dict[str, np.ndarray] = {}
    for column in table.all_columns:
        cells = _good_cells(column, dialect, rng, rows)
        if column.nullable:
            cells[rng.random(rows) < NULL_FRACTION] = missing_cell(dialect)
        columns[column.name] = cells
    defects = _break_rows(table, columns, rng, round(rows * bad_fraction))
    frame = pd.DataFrame({column.csv_header: columns[column.name] for column in table.all_columns})
    return SchemaRecords(frame, defects)


def generate_frame(table: RawTable, rows: int, seed: int, bad_fraction: float = 0.0) -> pd.DataFrame:
    """The cells of `generate_records` (its `defects` say which rows were broken)."""
    return generate_records(table, rows, seed, bad_fraction).cells


def missing_cell(dialect: CsvDialect) -> str:
    """How the dialect writes a missing cell: its first non-empty missing token, else empty."""
    return next((token for token in dialect.missing_values if token.strip()), "")


# ---- a column's rule -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Domain:
    """The values a column may take: a list (`allowed`, frame values: a date as its days) or a
    closed range [low, high] (ints for int64 and date columns, floats for float64), or free text."""

    allowed: tuple[Any, ...] | None = None
    low: float | int = 0
    high: float | int = 0
    free_text: bool = False


def _unsupported(column: RawColumn, why: str = "is not isin or in_range") -> UnsupportedRule:
    assert column.check is not None
    return UnsupportedRule(f"cannot generate values for column {column.name}: its rule {rule_text(column.check)} {why}")


def _domain(column: RawColumn) -> _Domain:
    check = column.check
    if column.dtype == "bool":
        values: tuple[Any, ...] = (False, True)
        if check is not None:
            values = tuple(v for v in values if _passes(column, v))
            if not values:
                raise _unsupported(column, "allows neither bool")
        return _Domain(allowed=values)
    if check is None:
        if column.dtype == "str":
            return _Domain(free_text=True)
        first, last = DEFAULT_DATE_RANGE if column.dtype == "date" else DEFAULT_NUMBER_RANGE
        return _Domain(low=float(first), high=float(last)) if column.dtype == "float64" else _Domain(low=first, high=last)
    statistics = check.statistics or {}
    if check.name == "isin" and "allowed_values" in statistics:
        allowed = tuple(sorted(statistics["allowed_values"]))
        if not allowed:
            raise _unsupported(column, "allows no value")
        return _Domain(allowed=allowed)
    if check.name != "in_range" or "min_value" not in statistics:
        raise _unsupported(column)
    if column.dtype == "str":
        raise _unsupported(column, "is a range of text, not a list of categories")
    minimum, maximum = statistics["min_value"], statistics["max_value"]
    include_min, include_max = statistics.get("include_min", True), statistics.get("include_max", True)
    low: float | int
    high: float | int
    if column.dtype in ("int64", "date"):  # math.floor and ceil keep a Python int exact
        low = math.floor(minimum) + 1 if not include_min else math.ceil(minimum)
        high = math.ceil(maximum) - 1 if not include_max else math.floor(maximum)
    else:
        low = float(minimum) if include_min else float(np.nextafter(float(minimum), math.inf))
        high = float(maximum) if include_max else float(np.nextafter(float(maximum), -math.inf))
    if not low <= high:
        raise _unsupported(column, "allows no value")
    return _Domain(low=low, high=high)


def _passes(column: RawColumn, value: Any) -> bool:
    assert column.check is not None
    statistics = column.check.statistics or {}
    if column.check.name == "isin":
        return value in statistics.get("allowed_values", ())
    if column.check.name == "in_range":
        return statistics["min_value"] <= value <= statistics["max_value"]
    raise _unsupported(column)


def _decimals(low: float, high: float) -> int:
    """Decimals a float of [low, high] is rounded to: 2 for a width of 10..100, one fewer for every
    tenfold more, one more for every tenfold less (1 to 6)."""
    width = high - low
    if not width > 0:
        return 6
    return int(np.clip(4 - math.ceil(math.log10(width)), 1, 6))


# ---- good cells ----------------------------------------------------------------------------------


def _good_cells(column: RawColumn, dialect: CsvDialect, rng: np.random.Generator, rows: int) -> np.ndarray:
    """`rows` cells (an object array of str) that pass the column's rule."""
    domain = _domain(column)
    if domain.free_text:
        return _free_text(dialect, rng, rows)
    if domain.allowed is not None:
        picks = rng.integers(0, len(domain.allowed), rows)
        return _text(column, dialect, np.array(domain.allowed)[picks])
    if column.dtype in ("int64", "date"):
        return _text(column, dialect, rng.integers(int(domain.low), int(domain.high), rows, endpoint=True))
    decimals = _decimals(domain.low, domain.high)
    values = np.clip(np.round(rng.uniform(domain.low, domain.high, rows), decimals), domain.low, domain.high)
    return _text(column, dialect, values)


def _text(column: RawColumn, dialect: CsvDialect, values: np.ndarray) -> np.ndarray:
    """Frame values (a date as its days) as the data set's cells, an object array of str."""
    if column.dtype == "bool":
        text = np.where(values.astype(bool), dialect.true_values[0], dialect.false_values[0])
    elif column.dtype == "date":
        text = (np.datetime64(EPOCH.isoformat(), "D") + values.astype(np.int64).astype("timedelta64[D]")).astype(str)
    elif column.dtype == "int64":
        text = values.astype(np.int64).astype(str)
    elif column.dtype == "float64":
        text = values.astype(np.float64).astype(str)  # the shortest text that reads back as the same float
    else:
        text = values.astype(str)
    return text.astype(object)


def _free_text(dialect: CsvDialect, rng: np.random.Generator, rows: int) -> np.ndarray:
    """One to three words of the pool, space-separated: never empty, never a missing token, no
    blanks at either end (readers strip cells)."""
    missing = {token.strip() for token in dialect.missing_values}
    words = np.array([w for w in (*_WORDS, f"left{dialect.delimiter}right") if w not in missing])
    count = rng.integers(1, 4, rows)
    picks = rng.integers(0, len(words), (rows, 3))
    text = words[picks[:, 0]]
    for k in (1, 2):
        text = np.char.add(text, np.where(count > k, np.char.add(" ", words[picks[:, k]]), ""))
    text = text.astype(object)
    text[np.isin(text, list(missing))] = words[0]
    return text


# ---- defects -------------------------------------------------------------------------------------


def _defect_kinds(column: RawColumn, dialect: CsvDialect) -> tuple[str, ...]:
    kinds = []
    if _outside_possible(column):
        kinds.append(OUTSIDE_RULE)
    if not column.nullable:
        kinds.append(REQUIRED_EMPTY)
    if column.numeric:
        kinds.append(NOT_A_NUMBER)
    if column.dtype == "date":
        kinds.append(NOT_A_DATE)
    if column.dtype == "bool" and _junk(_NOT_BOOLS, dialect, bools=True):
        kinds.append(NOT_A_BOOL)
    return tuple(kinds)


def _outside_possible(column: RawColumn) -> bool:
    if column.check is None:
        return False
    if column.dtype == "bool":
        return len(_domain(column).allowed or ()) < 2
    return True


def _break_rows(table: RawTable, columns: dict[str, np.ndarray], rng: np.random.Generator, count: int
                ) -> pd.DataFrame:
    """Gives `count` distinct rows one defect each (in `columns`, in place); the defects, by row."""
    empty = pd.DataFrame({"row": np.empty(0, np.int64), "column": np.empty(0, object), "kind": np.empty(0, object),
                          "cell": np.empty(0, object)})
    rows = len(next(iter(columns.values()))) if columns else 0
    count = min(count, rows)
    if count <= 0:
        return empty
    breakable = [(c, kinds) for c in table.all_columns if (kinds := _defect_kinds(c, table.dialect))]
    if not breakable:
        raise UnsupportedRule("cannot generate defects: every column is nullable free text, which no value breaks")
    victims = np.sort(rng.choice(rows, size=count, replace=False))
    which = rng.integers(0, len(breakable), count)  # a column, then one of its kinds
    kind_pick = rng.integers(0, np.array([len(kinds) for _, kinds in breakable])[which])
    parts = []
    for j, (column, kinds) in enumerate(breakable):
        for k, kind in enumerate(kinds):
            rows_hit = victims[(which == j) & (kind_pick == k)]
            if not len(rows_hit):
                continue
            cells = _defect_cells(column, kind, table.dialect, rng, len(rows_hit))
            columns[column.name][rows_hit] = cells
            parts.append(pd.DataFrame({"row": rows_hit, "column": column.name, "kind": kind, "cell": cells}))
    return pd.concat(parts).sort_values("row", kind="stable").reset_index(drop=True)


def _junk(texts: Sequence[str], dialect: CsvDialect, bools: bool = False) -> list[str]:
    """The texts that the dialect does not read as missing (nor as a bool, for `bools`)."""
    taken = {token.strip() for token in dialect.missing_values} | {""}
    if bools:
        taken |= {*dialect.true_values, *dialect.false_values, "True", "true", "False", "false"}
    return [text for text in texts if text.strip() not in taken]


def _defect_cells(column: RawColumn, kind: str, dialect: CsvDialect, rng: np.random.Generator, n: int
                  ) -> np.ndarray:
    if kind == OUTSIDE_RULE:
        return _outside_cells(column, dialect, rng, n)
    if kind == REQUIRED_EMPTY:
        spellings = np.array(sorted({"", missing_cell(dialect)}), dtype=object)
        return spellings[rng.integers(0, len(spellings), n)]
    junk = {NOT_A_NUMBER: _NOT_NUMBERS + (_NOT_INTEGERS if column.dtype == "int64" else ()),
            NOT_A_DATE: _NOT_DATES, NOT_A_BOOL: _NOT_BOOLS}[kind]
    choices = np.array(_junk(junk, dialect, bools=kind == NOT_A_BOOL), dtype=object)
    return choices[rng.integers(0, len(choices), n)]


def _outside_cells(column: RawColumn, dialect: CsvDialect, rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` cells that parse as the column's kind but break its rule."""
    domain = _domain(column)
    if column.dtype == "bool":
        assert domain.allowed is not None
        return _text(column, dialect, np.full(n, not domain.allowed[0]))
    if column.dtype == "str":
        unseen = np.array(_unseen_categories(column, dialect), dtype=object)
        return unseen[rng.integers(0, len(unseen), n)]
    if domain.allowed is not None:  # a number or date outside the list
        low, high = min(domain.allowed), max(domain.allowed)
    else:
        low, high = domain.low, domain.high
    # Beyond the ends (of a list too: never one of its values), by 1 and up to 10 steps more.
    whole = column.dtype in ("int64", "date")
    step = max(1, int(high - low) // 10) if whole else 1.0
    limit_low, limit_high = (_DATE_LOW, _DATE_HIGH) if column.dtype == "date" else (-_SAFE_INT, _SAFE_INT)
    above_ok, below_ok = high + 1 + 10 * step <= limit_high, low - 1 - 10 * step >= limit_low
    if not (above_ok or below_ok):
        raise _unsupported(column, "leaves no room outside its values")
    above = rng.random(n) < 0.5 if above_ok and below_ok else np.full(n, above_ok)
    if whole:  # in int64: exact
        offset = 1 + rng.integers(0, 10, n) * np.int64(step)
        values = np.where(above, np.int64(high) + offset, np.int64(low) - offset)
    else:
        offset = 1 + np.round(rng.random(n) * max(high - low, 1.0), _decimals(low, high))
        values = np.where(above, high + offset, low - offset)
    return _text(column, dialect, values)


def _unseen_categories(column: RawColumn, dialect: CsvDialect) -> list[str]:
    """Texts outside a category list: made-up ones and the allowed ones in the wrong case."""
    allowed = {str(v) for v in _domain(column).allowed or ()}
    candidates = [*_UNSEEN_CATEGORIES, *(v.swapcase() for v in sorted(allowed))]
    unseen = [c for c in _junk(candidates, dialect) if c not in allowed and c == c.strip()]
    return unseen or ["|".join(sorted(allowed)) + "?"]


# ---- files ---------------------------------------------------------------------------------------


def write_csv(frame: pd.DataFrame, table: RawTable, path: Path) -> None:
    """The cells as a CSV file in the table's dialect (its delimiter and line end, UTF-8, a header
    of the frame's column names; RFC 4180 quoting, only where a cell needs it), atomically. A
    missing cell (None or NaN) is written empty."""
    dialect = table.dialect
    text = frame.astype(object).where(frame.notna(), "")
    with atomic.atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, delimiter=dialect.delimiter, lineterminator=dialect.line_end, quotechar='"',
                            doublequote=True, quoting=csv.QUOTE_MINIMAL)
        writer.writerow([str(name) for name in text.columns])
        writer.writerows(text.itertuples(index=False, name=None))


def write_parquet(frame: pd.DataFrame, table: RawTable, path: Path) -> None:
    """The cells as a Parquet file, atomically: the same text as the CSV (missing tokens included),
    one string column per field, named by its snake_case field name (as etl_job.synthetic names
    its Parquet columns); readers parse the text as they parse a CSV's."""
    names = [table.header_to_name.get(str(header).strip(), str(header)) for header in frame.columns]
    text = frame.astype(object).where(frame.notna(), None)
    arrow = pa.Table.from_arrays([pa.array(text[header].tolist(), type=pa.string()) for header in frame.columns],
                                 names=names)
    with atomic.atomic_path(Path(path)) as tmp:
        pq.write_table(arrow, tmp)


def write(frame: pd.DataFrame, table: RawTable, path: Path) -> None:
    """write_csv for a .csv path, write_parquet for a .parquet path."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        write_csv(frame, table, path)
    elif suffix == ".parquet":
        write_parquet(frame, table, path)
    else:
        raise ValueError(f"{path}: unknown output format (expected .csv or .parquet)")


# ---- edge records --------------------------------------------------------------------------------


def edge_values(column: RawColumn) -> list[Any]:
    """A request field's edge values, as a client sends them (a date as ISO text, None for
    missing): both bools; every category of a list; both ends of a range (the first and last
    allowed date); an empty and a non-ASCII text for free text; None when the field is nullable."""
    domain = _domain(column)
    if domain.free_text:
        values: list[Any] = ["", NON_ASCII_TEXT]
    elif domain.allowed is not None:
        values = list(domain.allowed)
    else:
        values = [domain.low, domain.high]
    return [*(converters.request_value(column, v) for v in values), *([None] if column.nullable else [])]


def edge_records(table: RawTable) -> list[dict[str, object]]:
    """Request-field dicts that together take every edge value of every field: record i takes
    value i (mod its count) of each field, so the field with the most values sets the count.
    Deterministic: the same table gives the same records."""
    values = {column.name: edge_values(column) for column in table.columns}
    count = max((len(v) for v in values.values()), default=0)
    return [{name: field_values[i % len(field_values)] for name, field_values in values.items()} for i in range(count)]


class InvalidRecord(NamedTuple):
    """A record with one field just outside its rule: the field, and the kind of rule it breaks
    (ISIN_RULE, RANGE_RULE, DATE_RULE_KIND or raw_schema.REQUIRED: the first word of the rule the
    job and the server name)."""

    record: dict[str, object]
    field: str
    rule: str


def invalid_edge_records(table: RawTable) -> list[InvalidRecord]:
    """For every request field, the first edge record with that field just outside its rule: an
    unseen category, a number or date one below and one above a list's or a range's ends (one day
    for a date; min - 1 and max + 1 for a float), an impossible date, a required field missing
    (None). Fields with no rule and nullable ones break only what they have. Deterministic."""
    base = edge_records(table)[0] if table.columns else {}
    invalid = []

    def broken(column: RawColumn, value: object, rule: str) -> None:
        invalid.append(InvalidRecord({**base, column.name: value}, column.name, rule))

    for column in table.columns:
        domain = _domain(column)
        if column.check is not None and column.dtype != "bool":
            rule = ISIN_RULE if domain.allowed is not None else RANGE_RULE
            if column.dtype == "str":
                broken(column, _unseen_categories(column, table.dialect)[0], rule)
            else:
                values = domain.allowed if domain.allowed is not None else (domain.low, domain.high)
                low, high = min(values), max(values)
                broken(column, converters.request_value(column, low - 1), rule)
                broken(column, converters.request_value(column, high + 1), rule)
        elif column.check is not None and _outside_possible(column):
            assert domain.allowed is not None
            broken(column, not domain.allowed[0], ISIN_RULE)
        if column.dtype == "date":
            broken(column, _NOT_DATES[0], DATE_RULE_KIND)
        if not column.nullable:
            broken(column, None, REQUIRED)
    return invalid
