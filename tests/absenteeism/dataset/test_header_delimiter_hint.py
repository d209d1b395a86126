"""Defect: a comma-separated export gave `missing columns [all 21]` with no hint. When a CSV header
finds more of the data set's columns split at another delimiter than at ';', the message names the
delimiter it appears to use; on every read path (chunked, CR line ends, the Dask planner)."""

from __future__ import annotations

import pytest

from absenteeism.dataset import partitions
from absenteeism.dataset import reader as input_reader
from absenteeism.dataset.raw_chunk import InputFormatError
from etl_job import synthetic

DELIMITERS = {"comma": b",", "tab": b"\t", "pipe": b"|"}


def _messages(path) -> list[str]:
    messages = []
    for read in (lambda: list(input_reader.Reader(path).chunks()), lambda: partitions.plan(path, 1000)):
        with pytest.raises(InputFormatError) as error:
            read()
        messages.append(str(error.value))
    return messages


@pytest.mark.parametrize("line_end", [b"\r\n", b"\r"], ids=["CRLF", "CR"])
@pytest.mark.parametrize("name", DELIMITERS)
def test_a_header_split_at_another_delimiter_is_named(tmp_path, name, line_end):
    path = tmp_path / f"{name}.csv"
    synthetic.write(synthetic.generate(50, seed=4), path)
    path.write_bytes(path.read_bytes().replace(b";", DELIMITERS[name]).replace(b"\r\n", line_end))
    for message in _messages(path):
        assert message.startswith(f"{name}.csv: missing columns ['id', ")
        assert message.endswith(f"the header looks {name}-separated (21 of the 21 columns are found when it is split "
                                f"at {DELIMITERS[name].decode()!r}, 0 at ';'); this data set's CSV uses ';'"), message


def test_the_header_only_of_a_comma_export_is_enough(tmp_path):
    """The real header joined by commas over rows split at ';' (the header is what is looked at)."""
    path = tmp_path / "header.csv"
    synthetic.write(synthetic.generate(20, seed=4), path)
    header, rest = path.read_bytes().split(b"\r\n", 1)
    path.write_bytes(header.replace(b";", b",") + b"\r\n" + rest)
    for message in _messages(path):
        assert "the header looks comma-separated" in message


def test_a_semicolon_header_lacking_a_column_gets_no_delimiter_hint(tmp_path):
    path = tmp_path / "lacking.csv"
    synthetic.write(synthetic.generate(20, seed=4), path)
    path.write_bytes(path.read_bytes().replace(b"Seasons;", b"Season;", 1))
    for message in _messages(path):
        assert message == "lacking.csv: missing columns ['seasons']"
