"""ViolationTable: the violations of a batch kept as arrays, put together from pieces."""

from __future__ import annotations

import numpy as np

from absenteeism.raw_schema import Violation
from absenteeism.violation_table import ViolationTable

PIECES = [
    [Violation(row=0, column="age", rule="in_range(18, 70)", value=5), Violation(row=2, column="pet", rule="required",
                                                                             value=None)],
    [],
    [Violation(row=1, column="seasons", rule="isin([1, 2, 3, 4])", value=7)],
]


def _fields(table: ViolationTable) -> list[tuple[str, bytes]]:
    """Each field's dtype and bytes (NaN, the value of a missing field, equals itself here)."""
    return [(getattr(table, name).dtype.str, getattr(table, name).tobytes()) for name in ViolationTable.__slots__]


def test_concat_of_a_generator_equals_concat_of_a_list():
    """A one-shot iterable (compiled_checks passes a generator) must give every field of every
    table, not the first field's and then nothing: each table is read once, whole."""
    from_list = ViolationTable.concat([ViolationTable.of(piece) for piece in PIECES])
    from_generator = ViolationTable.concat(ViolationTable.of(piece) for piece in PIECES)
    assert len(from_list) == 3
    assert _fields(from_generator) == _fields(from_list)
    assert [v.column for v in from_generator] == ["age", "pet", "seasons"]


def test_concat_of_nothing_is_an_empty_table():
    empty = ViolationTable.concat(iter(()))
    assert len(empty) == 0 and all(len(getattr(empty, name)) == 0 for name in ViolationTable.__slots__)
    assert np.isnan(ViolationTable.of([PIECES[0][1]]).values).all()  # a missing field has no value
