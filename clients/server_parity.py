"""python -m clients parity, two ways:

- against a server (--target, --training-set, --input): replays every accepted row of a raw input
  through a running server and compares each row's features (names, order, float64 bits) and
  prediction with the ETL job's training set. Single Predict calls, PredictBatch calls and a
  PredictStream: each mode is compared on its own.
- on live traffic (--prediction-log DIR --config CONFIG): recomputes every record the server logged
  with that config through the batch path and compares it with what the server logged
  (log_replay.py). Needs no server.

Exit code 0 only when every row is identical, 4 on any difference, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from absenteeism import parity, served_model
from absenteeism.dataset import training_set_files
from absenteeism.dataset.reader import read_typed
from absenteeism.online import converters
from absenteeism.v1 import raw_record_pb2
from clients.client import Prediction, PredictionClient

MODES = ("predict", "batch", "stream")
EXIT_IDENTICAL, EXIT_MISMATCH = 0, 4


def accepted_records(raw_input: Path, source_rows: np.ndarray) -> list[raw_record_pb2.RawRecord]:
    """The raw records of `source_rows`, numbered exactly as the ETL job numbers its input."""
    typed = read_typed(raw_input).frame  # InputFormatError is a ValueError
    unknown = np.setdiff1d(source_rows, typed.index.to_numpy())
    if unknown.size:
        raise ValueError(f"training set rows {unknown[:5].tolist()} are not in {raw_input}: wrong input file?")
    return converters.frame_to_records(typed.loc[source_rows])


@dataclass(frozen=True)
class Served:
    """What the server answered for the records, in their order."""

    feature_names: tuple[str, ...]
    features: np.ndarray  # records x feature_names
    predictions: np.ndarray
    probabilities: np.ndarray | None  # a classifier's (records x classes)


def _probabilities(results: Sequence[Prediction]) -> np.ndarray | None:
    """A classifier's probabilities from single answers (None for a regressor's)."""
    if not results or not results[0].probabilities:
        return None
    labels = tuple(results[0].probabilities)
    if any(tuple(r.probabilities) != labels for r in results):
        raise ValueError("class labels or their order differ between responses")
    return np.array([list(r.probabilities.values()) for r in results], dtype=np.float64)


def predict_one_by_one(client: PredictionClient, records: Sequence, concurrency: int, progress: bool) -> Served:
    call = lambda record: client.predict(record, include_features=True)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(tqdm(pool.map(call, records), total=len(records), desc="Predict", disable=not progress))
    names = tuple(results[0].features) if results else ()
    if any(tuple(r.features) != names for r in results):
        raise ValueError("feature names or order differ between responses")
    matrix = np.array([list(r.features.values()) for r in results], dtype=np.float64).reshape(len(results), -1)
    return Served(names, matrix, np.array([r.prediction for r in results], dtype=np.float64), _probabilities(results))


def predict_in_batches(client: PredictionClient, records: Sequence, batch_size: int, progress: bool) -> Served:
    names: tuple[str, ...] | None = None
    matrices: list[np.ndarray] = []
    predictions: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    for start in tqdm(range(0, len(records), batch_size), desc="PredictBatch", disable=not progress):
        batch = client.predict_batch(records[start:start + batch_size], include_features=True)
        if names is not None and batch.feature_names != names:
            raise ValueError("feature names or order differ between batches")
        if batch.features is None:
            raise ValueError("PredictBatch answered without features although include_features was set")
        names = batch.feature_names
        matrices.append(batch.features)
        predictions.append(batch.predictions)
        if batch.probabilities is not None:
            probabilities.append(batch.probabilities)
    return Served(names or (), np.vstack(matrices), np.concatenate(predictions),
                  np.vstack(probabilities) if probabilities else None)


def predict_streaming(client: PredictionClient, records: Sequence, progress: bool) -> Served:
    results = list(tqdm(client.predict_stream(records, include_features=True), total=len(records),
                        desc="PredictStream", disable=not progress))
    refused = [r for r in results if not r.ok]
    if refused:
        raise ValueError(f"{len(refused)} rows refused over PredictStream, first: record {refused[0].index}: "
                         + "; ".join(str(v) for v in refused[0].violations))
    answers = [r.prediction for r in results if r.prediction is not None]
    names = tuple(answers[0].features) if answers else ()
    matrix = np.array([list(r.features.values()) for r in answers], dtype=np.float64)
    return Served(names, matrix.reshape(len(answers), -1), np.array([r.prediction for r in answers]),
                  _probabilities(answers))


def run_parity(client: PredictionClient, training_set: Path, raw_input: Path, modes: Sequence[str] = MODES,
               batch_size: int = 1000, concurrency: int = 8, progress: bool = False) -> dict[str, parity.ParityReport]:
    served = client.serving_config()
    written_by = training_set_files.config_id_of(training_set)
    if written_by is not None and written_by != served.content_sha256:
        raise ValueError(f"training set {training_set} belongs to config {written_by}, the server serves config "
                         f"{served.content_sha256}: compare a server with the training set of the run that built its "
                         "config")
    table = pd.read_parquet(training_set)
    feature_names = tuple(served.feature_names)
    class_labels = tuple(served.onnx_model.class_labels)
    probability_columns = [served_model.probability_name(label) for label in class_labels]
    absent = [name for name in (*feature_names, parity.PREDICTION, *probability_columns) if name not in table.columns]
    if absent:
        raise ValueError(f"training set {training_set} lacks columns {absent} the server's model uses: "
                         "it was built with another config")
    source_rows = table["source_row"].to_numpy()
    expected = table.loc[:, list(feature_names)].to_numpy(dtype=np.float64)
    expected_predictions = table[parity.PREDICTION].to_numpy(dtype=np.float64)
    expected_probabilities = table.loc[:, probability_columns].to_numpy(dtype=np.float64) if class_labels else None
    records = accepted_records(raw_input, source_rows)
    calls = {
        "predict": lambda: predict_one_by_one(client, records, concurrency, progress),
        "batch": lambda: predict_in_batches(client, records, batch_size, progress),
        "stream": lambda: predict_streaming(client, records, progress),
    }
    reports = {}
    for mode in modes:
        answered = calls[mode]()
        reports[mode] = parity.compare(source_rows, feature_names, expected, expected_predictions,
                                       answered.feature_names, answered.features, answered.predictions,
                                       class_labels=class_labels, expected_probabilities=expected_probabilities,
                                       got_probabilities=answered.probabilities)
    return reports


def add_parser(subcommands, add_connection_arguments, client_from_args) -> None:
    """Adds `parity` to the CLI; the connection flags and client come from clients.client_cli."""
    parser = subcommands.add_parser("parity", help="compare a running server with the ETL job's training set",
                                    description=__doc__)
    add_connection_arguments(parser, required=False)
    parser.add_argument("--training-set", type=Path, help="DIR/training_set.parquet of the ETL run")
    parser.add_argument("--input", type=Path, help="the raw input file or folder of that ETL run")
    replay = parser.add_argument_group("parity on live traffic (instead of --target, --training-set, --input)")
    replay.add_argument("--prediction-log", type=Path, help="the folder of a server's --prediction-log")
    replay.add_argument("--config", type=Path, help="the serving_config.pb whose logged records are replayed")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--batch-size", type=int, default=1000, help="records per PredictBatch call")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent single Predict calls")
    parser.add_argument("--report", type=Path, help="also write the comparison as JSON here")
    parser.add_argument("--no-progress", dest="progress", action="store_false")

    def run_with_client(args: argparse.Namespace) -> int:
        if args.prediction_log is not None or args.config is not None:
            return run_replay(args)
        missing = [flag for flag, value in (("--target", args.target), ("--training-set", args.training_set),
                                            ("--input", args.input)) if value is None]
        if missing:
            raise ValueError(f"parity needs {', '.join(missing)} (against a server), or --prediction-log and "
                             "--config (on logged traffic)")
        with client_from_args(args) as client:
            return run(args, client)

    parser.set_defaults(run=run_with_client)


def run(args: argparse.Namespace, client: PredictionClient) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        raise ValueError(f"--modes: unknown {sorted(unknown)}; choose from {MODES}")
    reports = run_parity(client, args.training_set, args.input, modes, args.batch_size, args.concurrency,
                         args.progress)
    for mode, report in reports.items():
        print(f"[{mode}] " + report.summary())
    identical = all(report.identical for report in reports.values())
    print("PARITY: identical" if identical else "PARITY: MISMATCH")
    if args.report:
        args.report.write_text(json.dumps({m: r.as_dict() for m, r in reports.items()}, indent=2) + "\n")
    return EXIT_IDENTICAL if identical else EXIT_MISMATCH


def run_replay(args: argparse.Namespace) -> int:
    from absenteeism.config_io import ConfigError  # the batch path's imports only for this mode
    from clients import log_replay

    used = [flag for flag, value in (("--target", args.target), ("--training-set", args.training_set),
                                     ("--input", args.input)) if value is not None]
    if used or args.prediction_log is None or args.config is None:
        raise ValueError("parity on logged traffic takes --prediction-log DIR and --config CONFIG"
                         + (f", not {', '.join(used)}" if used else ""))
    try:
        result = log_replay.replay(args.prediction_log, args.config)
    except ConfigError as error:
        raise ValueError(f"config {args.config}: {error}") from None
    print(result.summary())
    print("PARITY: identical" if result.identical else "PARITY: MISMATCH")
    if args.report:
        args.report.write_text(json.dumps({"config_id": result.config_id,
                                           "files": {name: r.as_dict() for name, r in result.files.items()},
                                           "other_configs": dict(result.other_configs)}, indent=2) + "\n")
    return EXIT_IDENTICAL if result.identical else EXIT_MISMATCH
