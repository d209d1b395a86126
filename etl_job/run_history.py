"""`python -m etl_job runs list | rollback`: the published runs an output folder keeps (the newest
`run --keep N`, and the published one: output_folder.py), and publishing one of them again.

A rollback is the switch a new run makes (one rename of `..data`, signals held), made only after
the run's files are checked whole: every output file present, its serving_config.pb read and its
digest verified, its report.json naming that config. Otherwise nothing changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from absenteeism import config_io
from etl_job import output_folder, outputs
from etl_job.job_errors import BadData

SHORT = 12  # hex digits of an input sha256 in a listing line
EVALUATION = ("mae", "rmse", "log_loss", "accuracy")  # the figures a line shows, those report.json holds


class UnknownRun(output_folder.UnknownRun):
    """No kept run of that id (exit 2: the command names what is not there)."""


@dataclass(frozen=True)
class KeptRun:
    run_id: str
    published: bool  # the run the output folder publishes now
    published_at: str | None  # ISO time of its first publication
    input_sha256: str | None = None
    rows: dict[str, int] = field(default_factory=dict)  # read, accepted, rejected
    evaluation: dict[str, float] = field(default_factory=dict)  # MAE/RMSE or log loss/accuracy
    config_id: str | None = None
    problem: str | None = None  # why the figures are missing (an unreadable report or config)

    def line(self) -> str:
        """One line for people: `*` marks the published run."""
        if self.problem:
            figures = f"unreadable: {self.problem}"
        else:
            rows = f"rows {self.rows['read']} read, {self.rows['accepted']} accepted, {self.rows['rejected']} rejected"
            evaluation = " ".join(f"{name} {value:.4f}" for name, value in self.evaluation.items())
            figures = f"input {(self.input_sha256 or '?')[:SHORT]}  {rows}  {evaluation}  config_id {self.config_id}"
        when = f"{self.published_at[:19]}Z" if self.published_at else "?"  # UTC, to the second
        return f"{'*' if self.published else ' '} {self.run_id}  published {when}  {figures}"


def kept_runs(out: Path) -> list[KeptRun]:
    """The kept runs of the output folder `out`, newest publication first."""
    out = Path(out)
    current = output_folder.published(out)
    return [_describe(folder, folder.name == current) for folder in output_folder.kept_runs(out)]


def _describe(folder: Path, published: bool) -> KeptRun:
    when = output_folder.published_at(folder)
    base = KeptRun(folder.name, published, when.isoformat() if when else None)
    try:
        report = json.loads((folder / outputs.REPORT_FILE).read_text())
        config = config_io.read_config(folder / config_io.CONFIG_FILE)
        metrics = report["metrics"]
        return KeptRun(base.run_id, published, base.published_at, input_sha256=report["input"]["sha256"],
                       rows={name: report["rows"][name] for name in ("read", "accepted", "rejected")},
                       evaluation={name: metrics[name] for name in EVALUATION if name in metrics},
                       config_id=config.content_sha256)
    except (OSError, ValueError, KeyError, TypeError, config_io.ConfigError) as error:
        return KeptRun(base.run_id, published, base.published_at, problem=f"{type(error).__name__}: {error}")


def as_json(runs: list[KeptRun]) -> str:
    return json.dumps([asdict(run) for run in runs], indent=2)


def check_whole(folder: Path) -> None:
    """BadData unless the run in `folder` can be published: every output file, a config that reads
    and verifies its digest, a report naming that config."""
    missing = [name for name in outputs.REQUIRED_FILES if not (folder / name).exists()]
    if missing:
        raise BadData(f"run {folder.name} is not whole: {', '.join(missing)} missing; nothing changed")
    try:
        config = config_io.read_config(folder / config_io.CONFIG_FILE)
    except config_io.ConfigError as error:
        raise BadData(f"run {folder.name} is not whole: {error}; nothing changed") from None
    if config_io.content_digest(config) != config.content_sha256:
        raise BadData(f"run {folder.name} is not whole: its {config_io.CONFIG_FILE} does not match its digest "
                      f"{config.content_sha256!r}; nothing changed")
    try:
        named = json.loads((folder / outputs.REPORT_FILE).read_text())["config"]["content_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BadData(f"run {folder.name} is not whole: its {outputs.REPORT_FILE} cannot be read ({error}); "
                      "nothing changed") from None
    if named != config.content_sha256:
        raise BadData(f"run {folder.name} is not whole: its {outputs.REPORT_FILE} names config {named}, "
                      f"its {config_io.CONFIG_FILE} is {config.content_sha256}; nothing changed")


def rollback(out: Path, run_id: str) -> bool:
    """Publishes the kept run `run_id` of `out` again, checked whole first (BadData, nothing changed,
    when it is not); UnknownRun for an id no kept run has. False when it is the published run already."""
    try:
        return output_folder.rollback(Path(out), run_id, outputs.FILES, check_whole)
    except output_folder.UnknownRun as error:
        raise UnknownRun(str(error)) from None
