"""What the contract's words say each RawRecord field may hold: the comments in raw_record.proto
and the field table of docs/contract.md. Tests hold the raw schema to these, a source written apart
from it."""

from __future__ import annotations

import re

from testkit.paths import REPO_ROOT


def documented_range(text: str) -> tuple[float, float]:
    """(first number, largest number) of a range as the docs write it: "1..10000", "0, 1",
    "2 (Monday)..6 (Friday)", "kg/m^2, 10..70" (an exponent is not a bound)."""
    numbers = [float(n) for n in re.findall(r"(?<![\^\w])\d+(?:\.\d+)?", text)]
    return numbers[0], max(numbers)


def proto_field_comments(proto: str = "absenteeism/v1/raw_record.proto") -> dict[str, str]:
    """RawRecord field name -> the comment lines just above it in `proto` (under protos/)."""
    comments, pending = {}, []
    for line in (REPO_ROOT / "protos" / proto).read_text().splitlines():
        line = line.strip()
        if line.startswith("//"):
            pending.append(line[2:])
            continue
        field = re.match(r"optional \w+ (\w+) = \d+;", line)
        if field:
            comments[field.group(1)] = " ".join(pending)
        pending = []
    return comments


def contract_table() -> dict[str, str]:
    """RawRecord field name -> the "valid values" cell of docs/contract.md's field table."""
    rows = re.findall(r"^\| \d+ \| `(\w+)` \| \w+ \| (.+) \|$", (REPO_ROOT / "docs" / "contract.md").read_text(), re.MULTILINE)
    return dict(rows)
