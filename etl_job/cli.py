"""Command line: `python -m etl_job run | runs | score | package-model | dag | generate`.

Exit codes: 0 done; 2 bad usage (argparse), or a Dask scheduler that cannot be reached, or a model that
cannot be served; 3 bad data (unreadable input, missing or duplicated columns, too many rejected rows,
data that cannot train a model, a run folder package-model cannot use); 1 internal error; 143 stopped by
SIGTERM, 130 by Ctrl-C (after cleaning up: the output folder keeps the previous run, the spill is
removed). Failures print one line on stderr; logs and progress bars go to stderr as well, so stdout
stays free.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from absenteeism import config_io, data_sets, dataflow, log_lines, malloc_tuning, release
from absenteeism.dataset.raw_chunk import InputFormatError
from etl_job import pipeline, run_history, run_settings, training
from etl_job.job_errors import BadData, ClusterError, ModelError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_BAD_DATA = 0, 1, 2, 3
EXIT_MISSING_TOOL = 69  # EX_UNAVAILABLE: a program the command needs is not installed
EXIT_CONFIG = 78  # EX_CONFIG: score was given a config a server would refuse (the server's boot exit code)
EXIT_CODES = """exit codes:
  0    done
  1    internal error (rerun with --verbose for the traceback)
  2    bad usage (runs rollback: no kept run of that id), or a Dask scheduler that cannot be
       reached or was lost, or --engine dask without Dask installed (the [dask] extra), or a
       model that cannot be made or served (an estimator that does not fit or convert, a learner
       without the [models] extra, a graph the serving checks refuse)
  3    bad data: unreadable input, missing or repeated columns, too many rejected rows, data that
       cannot train a model (the rejects are kept aside and the message says where); package-model:
       a run folder it cannot use (a file missing, a training set of another config, not its input);
       runs rollback: a kept run that is not whole (a file missing, a config that does not verify)
  69   a program the command needs is missing (dag: graphviz's dot, or the [viz] extra)
  130  interrupted (Ctrl-C), 143 stopped by SIGTERM: cleaned up, the output folder as it was"""
PACKAGE_EXIT_CODES = """exit codes:
  0    packaged and published
  1    internal error (rerun with --verbose for the traceback)
  2    bad usage, or a graph that cannot be served (operator domains, external data, size,
       input width or type, ZipMap outputs, class count, a NaN, answers that depend on the batch)
  3    a run folder or input that cannot be used (a file missing, another feature module, a
       training set of another config, an input that is not the run's)
  130  interrupted (Ctrl-C), 143 stopped by SIGTERM: the output folder as it was"""
SCORE_EXIT_CODES = """exit codes:
  0    scored and published (rows a server would refuse are in rejects.csv, not an error)
  1    internal error (rerun with --verbose for the traceback)
  2    bad usage, or a Dask scheduler that cannot be reached or was lost, or --engine dask without
       Dask installed (the [dask] extra)
  3    an input that cannot be read (missing, unreadable, columns missing or repeated)
  78   a config a server would refuse at boot (unreadable, edited, another feature module or raw
       schema, golden rows not reproduced)
  130  interrupted (Ctrl-C), 143 stopped by SIGTERM: the output folder as it was"""
EXIT_STOPPED = 128 + signal.SIGTERM  # what a shell reports for a TERM-killed program
log = logging.getLogger("etl_job")


class _MissingTool(Exception):
    """A program the command needs is not installed (exit 69, with how to install it)."""


class _MissingExtra(Exception):
    """The command needs an optional dependency this install lacks (exit 2, with the extra to install)."""


class _UnusableConfig(Exception):
    """score: a config a server would refuse at boot (exit 78, with the server's reason)."""


class _UsageError(Exception):
    """Bad usage found after parsing (argparse's own checks exit 2 by themselves)."""


class _Stopped(BaseException):
    """SIGTERM, raised where the main thread is, so every `with` and `finally` on the way out runs
    (run folder and spill removed). A BaseException, like KeyboardInterrupt: no `except Exception`
    swallows it."""


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return
    stopping: list[int] = []

    def stop(signum: int, _frame) -> None:
        if not stopping:  # a second SIGTERM does not cut the cleanup short
            stopping.append(signum)
            raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fraction(low_open: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (0.0 < value < 1.0 if low_open else 0.0 <= value <= 1.0):
            raise argparse.ArgumentTypeError(f"{value} is not within {'(0, 1)' if low_open else '[0, 1]'}")
        return value
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{value} is not a finite number > 0")
    return value


def _malloc_keep_mib(text: str) -> int:
    value = _non_negative_int(text)
    if value > malloc_tuning.MAX_KEEP_MIB:
        raise argparse.ArgumentTypeError(f"{value} is more than {malloc_tuning.MAX_KEEP_MIB}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _delimiter(text: str) -> str:
    """One character (`\\t` for a tab) that is not a quote or a line end."""
    delimiter = "\t" if text in ("\\t", "tab") else text
    if len(delimiter) != 1 or delimiter in "\"\r\n":
        raise argparse.ArgumentTypeError(f"{text!r}: one character that is not a quote or a line end (\\t: a tab)")
    return delimiter


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=release.program_name("etl_job"), description=__doc__.splitlines()[0],
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {release.version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs; tracebacks on internal errors")
    parser.add_argument("--log-format", choices=log_lines.FORMATS, default="text",
                        help="log lines on stderr: text (default) or json (one object a line, as the server's)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    defaults = training.FitSettings()
    run = commands.add_parser("run", help="build the serving config and training set from raw records")
    run.add_argument("--dataset", default=data_sets.DEFAULT, choices=sorted(data_sets.KNOWN),
                     help="the data set the input holds: its raw schema, features and contract (default: %(default)s)")
    run.add_argument("--input", type=Path, default=None,
                     help="a .csv/.parquet file or a folder of them (default: the data set's bundled sample)")
    run.add_argument("--delimiter", type=_delimiter, default=None,
                     help="the CSV files' delimiter, when not the data set's own (e.g. ',' or '\\t')")
    run.add_argument("--output-dir", type=Path, default=run_settings.DEFAULT_OUTPUT_DIR, help="default: build/")
    run.add_argument("--keep", type=_positive_int, default=run_settings.RunSettings.keep, metavar="N",
                     help="published runs kept in the output folder for `runs rollback`: the newest N by "
                          "publication, and the published one (default: %(default)s)")
    run.add_argument("--max-reject-fraction", type=_fraction(low_open=False),
                     default=run_settings.DEFAULT_MAX_REJECT_FRACTION,
                     help="fail (exit 3) when a larger fraction of rows breaks the raw schema (default: %(default)s)")
    run.add_argument("--model", default=defaults.model, metavar="ridge|gbt|package.module:function",
                     help="the learner: ridge (default), gbt (gradient-boosted trees, LightGBM), or a function "
                          "returning an unfitted scikit-learn estimator or pipeline; all but ridge are served as "
                          "ONNX and need the [models] extra")
    run.add_argument("--label", default="", metavar="NODE",
                     help="the label node of the feature module (tagged stage=\"label\") to learn "
                          "(default: the data set's DEFAULT_LABEL; absenteeism's is absence_hours)")
    run.add_argument("--max-fit-rows", type=_positive_int, default=defaults.max_fit_rows,
                     help="training rows a learner other than ridge may hold in memory (default: %(default)s)")
    run.add_argument("--alpha", type=_positive_float, default=defaults.alpha, help="ridge regularisation (default: %(default)s)")
    run.add_argument("--test-fraction", type=_fraction(low_open=True), default=defaults.test_fraction,
                     help="held-out share of the accepted rows (default: %(default)s)")
    run.add_argument("--seed", type=_non_negative_int, default=defaults.seed, help="split seed (default: %(default)s)")
    run.add_argument("--parity-rows", type=_positive_int, default=run_settings.RunSettings.parity_rows,
                     help="rows checked through the single-record online path before the config is written "
                          "(at least 1: a config is never written unchecked); all rows when the input has fewer "
                          "(default: %(default)s)")
    _add_chunk_arguments(run)
    _add_engine_arguments(run)
    run.set_defaults(handler=_run)

    _add_runs(commands)
    _add_score(commands)
    _add_package_model(commands)

    dag = commands.add_parser("dag", help="draw the offline and online feature DAGs as PNG pictures")
    dag.add_argument("--output-dir", type=Path, default=run_settings.DEFAULT_OUTPUT_DIR, help="default: build/")
    dag.set_defaults(handler=_dag)

    generate = commands.add_parser("generate", help="write synthetic records in the data set's format (absenteeism's "
                                                    "realistic, any other's from its raw schema alone)")
    generate.add_argument("--dataset", default=data_sets.DEFAULT, choices=sorted(data_sets.KNOWN),
                          help="the data set whose records to write (default: %(default)s)")
    generate.add_argument("--rows", type=_non_negative_int, default=1000, help="default: %(default)s")
    generate.add_argument("--seed", type=_non_negative_int, default=0, help="default: %(default)s")
    generate.add_argument("--output", type=Path, required=True, help="FILE.csv (the data set's format) or FILE.parquet")
    generate.add_argument("--bad-fraction", type=_fraction(low_open=False), default=0.0,
                          help="share of rows given one quirk each, which the job must reject (default: %(default)s)")
    generate.set_defaults(handler=_generate)
    return parser


def _add_chunk_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--chunk-rows", type=_positive_int, default=run_settings.RunSettings.chunk_rows,
                         help="rows read and processed at a time; bounds memory, never changes the outputs "
                              "(default: %(default)s)")
    command.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="progress bars on stderr (default: when stderr is a terminal)")
    command.add_argument("--malloc-keep-mib", type=_malloc_keep_mib, default=malloc_tuning.DEFAULT_KEEP_MIB,
                         metavar="MIB",
                         help="MiB of freed memory glibc keeps for the next chunk instead of handing it back to "
                              "the kernel (this process; 0: glibc's defaults) (default: %(default)s)")


def _add_engine_arguments(command: argparse.ArgumentParser) -> None:
    dask = run_settings.DaskSettings()
    engine = command.add_argument_group("engine", "where the job runs (docs/distributed.md)")
    engine.add_argument("--engine", choices=("local", "dask"), default="local",
                        help="local: this process (default); dask: the parts of the input as tasks on a Dask cluster")
    engine.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="with --engine dask: the scheduler of a running cluster (default: start a "
                             "LocalCluster on 127.0.0.1 and close it at the end)")
    engine.add_argument("--workers", type=_positive_int, default=dask.workers,
                        help="with --engine dask and no --scheduler: worker processes (default: %(default)s)")
    engine.add_argument("--connect-timeout", type=_positive_float, default=dask.connect_timeout,
                        help="seconds to reach --scheduler before giving up, exit 2 (default: %(default)s)")
    engine.add_argument("--part-bytes", type=_positive_int, default=dask.part_bytes,
                        help="with --engine dask: input bytes per task (CSV; Parquet parts take whole row "
                             "groups); never changes the outputs (default: %(default)s)")


def _dask_settings(args: argparse.Namespace) -> run_settings.DaskSettings:
    return run_settings.DaskSettings(scheduler=args.scheduler, workers=args.workers,
                                     connect_timeout=args.connect_timeout, part_bytes=args.part_bytes)


def _add_score(commands) -> None:
    from etl_job import scoring

    score = commands.add_parser(
        "score", help="a config's raw schema, features and model over a file, with the server's bits, no server",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SCORE_EXIT_CODES,
        description="""Verifies the config as a server does at boot, then scores every row of the input in
chunks (bounded memory), here or on a Dask cluster: the predictions (with --features, the
features too) as Parquet keyed by source row, each row the server's bits; rows a server would
refuse quarantined in rejects.csv with their reasons; aggregates read from the config, never
recomputed. Published all at once into --output-dir (docs/etl.md).""")
    score.add_argument("--config", type=Path, required=True, metavar="CONFIG",
                       help="a serving_config.pb (a job's output folder holds one)")
    score.add_argument("--input", type=Path, required=True, metavar="FILE_OR_FOLDER",
                       help="a .csv/.parquet file or a folder of them, in the config's data set's format; a "
                            "label column is ignored")
    score.add_argument("--output-dir", type=Path, required=True, metavar="DIR",
                       help="where predictions.parquet, rejects.csv and score_report.json are published")
    score.add_argument("--features", action="store_true", help="write the feature columns beside the predictions")
    score.add_argument("--delimiter", type=_delimiter, default=None,
                       help="the CSV files' delimiter, when not the data set's own (e.g. ',' or '\\t')")
    score.add_argument("--keep", type=_positive_int, default=scoring.DEFAULT_KEEP, metavar="N",
                       help="published scorings kept in the output folder (default: %(default)s)")
    _add_chunk_arguments(score)
    _add_engine_arguments(score)
    score.set_defaults(handler=_score)


def _add_runs(commands) -> None:
    runs = commands.add_parser(
        "runs", help="the published runs an output folder keeps: list them, publish one again",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""The output folder keeps the newest published runs (run --keep N, default 10) and the
published one. `list` shows them, newest first, the published one marked `*`; `rollback` publishes
one of them again, with the all-at-once switch a new run makes, once its files are checked whole.""",
        epilog="""exit codes:
  0    done (a rollback to the published run changes nothing)
  1    internal error (rerun with --verbose for the traceback)
  2    bad usage: no output folder, no kept run of that id
  3    rollback: the run is not whole (a file missing, a config that does not read or verify);
       the output folder as it was""")
    actions = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="one line per kept run, newest first, the published one marked *")
    listing.add_argument("--output-dir", type=Path, default=run_settings.DEFAULT_OUTPUT_DIR, help="default: build/")
    listing.add_argument("--json", action="store_true", help="a JSON list on stdout instead of lines")
    listing.set_defaults(handler=_runs_list)
    rollback = actions.add_parser("rollback", help="publish a kept run again, all files at once")
    rollback.add_argument("--output-dir", type=Path, default=run_settings.DEFAULT_OUTPUT_DIR, help="default: build/")
    rollback.add_argument("run_id", metavar="RUN_ID", help="a run id `runs list` shows")
    rollback.set_defaults(handler=_runs_rollback)


def _add_package_model(commands) -> None:
    package = commands.add_parser(
        "package-model", help="serve a model trained elsewhere (an ONNX graph) on the features of a run",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=PACKAGE_EXIT_CODES,
        description="""A new output folder from the run at --run and a model trained on its training set
(rows whose split is train; columns: the config's feature_names, in order; label: the column
named after the config's label, a classifier's as class indices 0..K-1) and exported to ONNX:
the run's features and aggregates with the graph as the model; its predictions, held-out
evaluation, golden rows and profile recomputed through the serving runtime; checked online
record by record; published all at once, as run publishes (docs/etl.md).""")
    package.add_argument("--run", type=Path, required=True, metavar="RUN_DIR",
                         help="the output folder of the run whose training set the model was trained on")
    package.add_argument("--onnx", type=Path, required=True, metavar="FILE",
                         help="the model as an ONNX graph: ai.onnx / ai.onnx.ml operators, input [rows, features] "
                              "(float or double); classifiers converted with zipmap=False")
    package.add_argument("--output-dir", type=Path, required=True, metavar="DIR",
                         help="where the new run is published (the run's own folder too: it is then replaced)")
    package.add_argument("--input", type=Path, metavar="FILE_OR_DIR",
                         help="the run's raw input, read again for the online parity check and refused unless its "
                              "sha256 is the run's (default: the input path the run's report.json names)")
    package.add_argument("--task", choices=tuple(training.TASKS),
                         help="default: the task of the run's label node (a classification label may be "
                              "served as binary or multiclass)")
    package.add_argument("--input-name", metavar="NAME", help="the graph's input (default: its one input)")
    package.add_argument("--prediction-output", metavar="NAME",
                         help="the output holding the prediction, a classifier's the int64 class index "
                              "(default: a regressor's one output; a classifier's one int64 tensor)")
    package.add_argument("--probability-output", metavar="NAME",
                         help="a classifier's [rows, classes] probabilities (default: its one float tensor)")
    package.add_argument("--parity-rows", type=_positive_int, default=run_settings.RunSettings.parity_rows,
                         help="rows of the run's input checked through the single-record online path, as run "
                              "checks them (default: %(default)s)")
    _add_chunk_arguments(package)
    package.set_defaults(handler=_package_model)


def _evaluated(metrics: dict) -> str:
    names = ("mae", "rmse") if "mae" in metrics else ("log_loss", "accuracy", "roc_auc")
    return ", ".join(f"{name} {metrics[name]:.3f} (baseline {metrics['baseline_' + name]:.3f})" for name in names)


def _run(args: argparse.Namespace) -> int:
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    malloc_tuning.keep_freed_memory(args.malloc_keep_mib)
    settings = run_settings.RunSettings(
        input_path=args.input, output_dir=args.output_dir,
        data_set=args.dataset, delimiter=args.delimiter, max_reject_fraction=args.max_reject_fraction,
        fit=training.FitSettings(alpha=args.alpha, test_fraction=args.test_fraction, seed=args.seed,
                                 model=args.model, label=args.label, max_fit_rows=args.max_fit_rows),
        parity_rows=args.parity_rows, progress=progress, chunk_rows=args.chunk_rows, engine=args.engine,
        keep=args.keep,
        dask=_dask_settings(args))
    _check_engine_choice(args)
    data_sets.activate(settings.chosen_data_set())  # the label and model checks read its feature module
    _check_model_choice(settings.fit)
    with _bars_logging(progress):
        result = pipeline.run(settings)
    rows = result.report["rows"]
    log.info("done: %d rows read, %d accepted, %d rejected; %s; outputs in %s", rows["read"], rows["accepted"],
             rows["rejected"], _evaluated(result.report["metrics"]), args.output_dir)
    return EXIT_OK


def _bars_logging(progress: bool) -> contextlib.AbstractContextManager:
    """Log lines go through tqdm while bars are drawn, so they do not tear the bars apart; without
    bars tqdm's logging module is not even imported."""
    if not progress:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


def _check_engine_choice(args: argparse.Namespace) -> None:
    if args.engine != "dask" and args.scheduler is not None:
        raise _UsageError("--scheduler goes with --engine dask")
    if args.engine != "dask":
        return
    from etl_job import dask_engine  # imported for the Dask engine only: the local engine starts sooner

    if why := dask_engine.missing():
        raise _MissingExtra(why)  # before any work: the command asks for what this install lacks


def _score(args: argparse.Namespace) -> int:
    from etl_job import scoring

    _check_engine_choice(args)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    malloc_tuning.keep_freed_memory(args.malloc_keep_mib)
    settings = scoring.ScoreSettings(
        config_path=args.config, input_path=args.input, output_dir=args.output_dir, with_features=args.features,
        chunk_rows=args.chunk_rows, engine=args.engine, dask=_dask_settings(args), delimiter=args.delimiter,
        keep=args.keep, progress=progress)
    with _bars_logging(progress):
        try:
            report = scoring.score(settings)
        except config_io.ConfigError as error:
            raise _UnusableConfig(str(error)) from None
    rows = report["rows"]
    log.info("done: %d of %d rows scored, %d quarantined (rejects.csv); outputs in %s", rows["scored"],
             rows["read"], rows["rejected"], args.output_dir)
    return EXIT_OK


def _output_folder(path: Path) -> Path:
    if not path.is_dir():
        raise run_history.UnknownRun(f"{path} is not an output folder (no such folder)")
    return path


def _runs_list(args: argparse.Namespace) -> int:
    runs = run_history.kept_runs(_output_folder(args.output_dir))
    if args.json:
        print(run_history.as_json(runs))
    else:
        for run in runs:
            print(run.line())
        if not runs:
            log.info("%s keeps no published run", args.output_dir)
    return EXIT_OK


def _runs_rollback(args: argparse.Namespace) -> int:
    if run_history.rollback(_output_folder(args.output_dir), args.run_id):
        log.info("done: %s publishes run %s again", args.output_dir, args.run_id)
    else:
        log.info("%s already publishes run %s: nothing changed", args.output_dir, args.run_id)
    return EXIT_OK


def _package_model(args: argparse.Namespace) -> int:
    from etl_job import package_model  # only this command reads ONNX files: `run` starts without it

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    settings = package_model.PackageSettings(
        run_dir=args.run, onnx_path=args.onnx, output_dir=args.output_dir, input_path=args.input, task=args.task,
        input_name=args.input_name, prediction_output=args.prediction_output,
        probability_output=args.probability_output, parity_rows=args.parity_rows, chunk_rows=args.chunk_rows,
        progress=progress)
    with _bars_logging(progress):
        result = package_model.package(settings)
    log.info("done: %s packaged onto the features of %s; %s; outputs in %s", args.onnx, args.run,
             _evaluated(result.report["metrics"]), args.output_dir)
    return EXIT_OK


def _check_model_choice(fit: training.FitSettings) -> None:
    """Before any row is read: the label exists, the model can learn its task, its extra is installed."""
    from etl_job import learners  # its libraries load only when a model is fitted

    try:
        learners.parse_model_choice(fit.model)
        training.check_model_fits_label(fit)
    except (ValueError, dataflow.LabelError) as error:
        raise _UsageError(str(error)) from None
    if fit.model != training.RIDGE and (why := learners.missing(fit.model)):
        raise _MissingExtra(why)


def _dag(args: argparse.Namespace) -> int:
    from etl_job import dag  # graphviz is only needed here

    try:
        written = dag.render(args.output_dir)
    except dag.GraphvizMissing as error:
        raise _MissingTool(str(error)) from None
    for path in written:
        log.info("wrote %s", path)
    return EXIT_OK


def _generate(args: argparse.Namespace) -> int:
    if args.output.suffix.lower() not in (".csv", ".parquet"):
        raise _UsageError(f"--output {args.output}: expected a .csv or .parquet file name")
    if args.dataset != "absenteeism":
        return _generate_from_schema(args)
    from etl_job import synthetic  # only this command needs the generator: `run` starts without it

    start = time.perf_counter()
    chunks = synthetic.generate_chunks(args.rows, args.seed, bad_fraction=args.bad_fraction)
    synthetic.write_chunks(chunks, args.output,
                           all_text=args.bad_fraction > 0 and args.rows > synthetic.CHUNK_ROWS)
    log.info("wrote %d rows to %s in %.2f s", args.rows, args.output, time.perf_counter() - start)
    return EXIT_OK


def _generate_from_schema(args: argparse.Namespace) -> int:
    """Records of a data set with no realistic generator: drawn from its raw schema's rules."""
    from etl_job import schema_records

    table = data_sets.activate(args.dataset).table
    start = time.perf_counter()
    try:
        records = schema_records.generate_records(table, args.rows, args.seed, bad_fraction=args.bad_fraction)
    except schema_records.UnsupportedRule as error:  # the data set, not the command line: no usage text
        print(f"etl_job: {error}", file=sys.stderr)
        return EXIT_USAGE
    schema_records.write(records.cells, table, args.output)
    log.info("wrote %d %s rows (%d with a defect) to %s in %.2f s", args.rows, args.dataset, len(records.defects),
             args.output, time.perf_counter() - start)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with argparse's message on bad usage
    log_lines.configure("DEBUG" if args.verbose else "INFO", args.log_format)
    try:
        with _sigterm_stops():
            return args.handler(args)
    except _Stopped:
        print("etl_job: stopped by SIGTERM", file=sys.stderr)
        return EXIT_STOPPED
    except _UsageError as error:
        parser.error(str(error))  # exits 2
    except _MissingTool as error:
        print(f"etl_job: {error}", file=sys.stderr)
        return EXIT_MISSING_TOOL
    except _UnusableConfig as error:
        print(f"etl_job: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except (ClusterError, _MissingExtra, run_history.UnknownRun) as error:
        print(f"etl_job: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ModelError as error:  # an estimator that does not fit, convert or pass the serving checks
        print(f"etl_job: model: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (BadData, InputFormatError) as error:
        print(f"etl_job: bad data: {error}", file=sys.stderr)
        return EXIT_BAD_DATA
    except KeyboardInterrupt:
        print("etl_job: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the one place internal failures are turned into an exit code
        if args.verbose:
            traceback.print_exc()
        print(f"etl_job: internal error: {type(error).__name__}: {error} (rerun with --verbose for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL
