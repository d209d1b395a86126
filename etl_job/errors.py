"""The job's failure kinds, mapped to exit codes at one place (cli.main)."""

from __future__ import annotations


class BadData(Exception):
    """The input cannot make a config: unreadable, missing columns, too many rejects, too few rows.

    The message says what is wrong with the data and, where it helps, where to look (the run's
    rejects.csv, kept aside: the output folder keeps the previous run).
    Exit code 3.
    """
