"""python -m clients <command>: a CLI over PredictionClient, one subcommand per job.

predict: reads a CSV or Parquet file of raw records in the data set's format, streams them through
PredictStream, writes one output row per predicted source row (source_row, prediction[, request
id][, features])
and reports every refused row with the server's reasons (stderr + a rejects CSV). Exit codes: 0 all
rows predicted, 3 some rows refused (see the rejects file), 1 the call failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
import pandas as pd
from tqdm import tqdm

from absenteeism import data_sets, release
from absenteeism.dataset import raw_chunk, raw_writers, reader
from absenteeism.online import converters
from absenteeism.raw_schema import REQUIRED
from clients import drift_report, live_evaluation, server_parity
from clients.client import PredictionClient, PredictionError, TlsOptions

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
EXIT_PIPE_CLOSED = 128 + signal.SIGPIPE  # what a shell reports for a tool whose reader went away
EXIT_CODES = """exit codes:
  0    done (predict: every row predicted; parity: every row identical; drift: no drift, or too few
       records to judge; evaluate: the live evaluation printed)
  1    the call failed (the server is unreachable, refused the call, or monitors no drift)
  2    bad usage or input
  3    predict: some rows were refused (reasons in the rejects file)
  4    parity: some row differs
  5    drift: some entry drifted
  141  the reader of stdout went away (e.g. `| head`): stopped quietly"""
REJECT_COLUMNS = ["source_row", "field", "rule", "description", "reported_by"]


def add_connection_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--target", required=required, help="server address, HOST:PORT")
    security = parser.add_argument_group("transport security (TLS unless --insecure)")
    security.add_argument("--insecure", action="store_true", help="plaintext connection")
    security.add_argument("--ca-cert", type=Path, help="CA that signed the server certificate (PEM); "
                                                       "default: the system roots")
    security.add_argument("--client-cert", type=Path, help="client certificate for mutual TLS (PEM)")
    security.add_argument("--client-key", type=Path, help="client private key for mutual TLS (PEM)")
    security.add_argument("--server-name", help="expected name in the server certificate, if not the target host")
    parser.add_argument("--timeout", type=float, default=None,
                        help="deadline in seconds for the whole call (default: none for streams)")
    parser.add_argument("--retries", type=int, default=3, help="retries on UNAVAILABLE, 0..4 (gRPC's retry policy, exponential backoff)")
    parser.add_argument("--dataset", default=data_sets.DEFAULT, choices=sorted(data_sets.KNOWN),
                        help="the data set the server serves: its typed records and service (default: %(default)s)")


def client_from_args(args: argparse.Namespace) -> PredictionClient:
    tls_flags = (args.ca_cert, args.client_cert, args.client_key, args.server_name)
    if args.insecure and any(tls_flags):
        raise ValueError("--insecure excludes the TLS flags")
    if bool(args.client_cert) != bool(args.client_key):
        raise ValueError("--client-cert and --client-key go together")
    tls = None if args.insecure else TlsOptions.from_files(args.ca_cert, args.client_cert, args.client_key,
                                                           args.server_name)
    data_sets.activate(args.dataset)  # the records this process reads and sends are that data set's
    return PredictionClient(args.target, insecure=args.insecure, tls=tls, timeout=args.timeout,
                            stream_timeout=args.timeout, retries=args.retries, data_set=args.dataset)


def _write(frame: pd.DataFrame, path: Path | None) -> None:
    if path is None:
        frame.to_csv(sys.stdout, index=False)
    elif path.suffix.lower() == ".parquet":
        raw_writers.write_parquet(frame, path)
    else:
        frame.to_csv(path, index=False)


def predict(args: argparse.Namespace) -> int:
    if args.request_id_column in ("source_row", "prediction"):
        raise ValueError(f"--request-id-column {args.request_id_column}: the output has that column already")
    data_sets.activate(args.dataset)  # the input holds that data set's rows
    typed = reader.read_typed(args.input)  # source rows: 1-based data rows, header excluded
    rejects: list[dict] = []
    unreadable = set()
    # Empty cells are sent as unset fields (the server names them "required"); cells that are not
    # numbers cannot be put in a typed record at all, so the client reports those itself.
    sendable = typed.frame.astype(object)
    for violation in typed.unparsed:
        sendable.at[violation.row, violation.column] = None
        if violation.rule != REQUIRED:
            unreadable.add(violation.row)
            rejects.append({"source_row": violation.row, "field": violation.column, "rule": violation.rule,
                            "description": violation.describe(), "reported_by": "client"})
    sendable = sendable.drop(index=sorted(unreadable))
    source_rows = list(sendable.index)
    records = converters.frame_to_records(sendable)

    rows, feature_rows = [], []
    with client_from_args(args) as client, tqdm(total=len(records), unit="row", file=sys.stderr,
                                                 disable=args.no_progress, desc="predict") as progress:
        for result in client.predict_stream(records, include_features=args.include_features,
                                            request_id=args.request_id):
            source_row = source_rows[result.index]
            if result.prediction is not None:  # result.ok
                rows.append({"source_row": source_row, "prediction": result.prediction.prediction,
                             "request_id": result.request_id})
                feature_rows.append(result.prediction.features)
            else:
                rejects.extend({"source_row": source_row, "field": v.field, "rule": v.rule,
                                "description": v.description, "reported_by": "server"} for v in result.violations)
            progress.update(1)

    output = pd.DataFrame(rows, columns=["source_row", "prediction", "request_id"])
    if args.request_id_column:  # what the server's prediction log names each row: `<stream id>/<i>`
        output = output.rename(columns={"request_id": args.request_id_column})
    else:
        output = output.drop(columns="request_id")
    if args.include_features and feature_rows:
        output = pd.concat([output, pd.DataFrame(feature_rows)], axis=1)
    _write(output, args.output)

    rejected = pd.DataFrame(rejects, columns=REJECT_COLUMNS).sort_values(["source_row", "field"], kind="stable")
    for reject in rejected.itertuples(index=False):
        print(f"row {reject.source_row}: {reject.description}", file=sys.stderr)
    rejects_path = args.rejects or (args.output.with_name(args.output.stem + ".rejects.csv") if args.output else None)
    n_rejected = rejected["source_row"].nunique()
    if n_rejected and rejects_path is not None:
        rejected.to_csv(rejects_path, index=False)
    print(f"{len(typed.frame)} rows: {len(rows)} predicted, {n_rejected} rejected"
          + (f" (reasons in {rejects_path})" if n_rejected and rejects_path else ""), file=sys.stderr)
    return EXIT_REJECTED if n_rejected else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=release.program_name("clients"), description="Client of a data set's PredictionService (absenteeism.v1's by default)",
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {release.version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict_parser = commands.add_parser("predict", help="predict every row of a CSV/Parquet file via PredictStream")
    add_connection_arguments(predict_parser)
    predict_parser.add_argument("--input", type=Path, required=True, help="CSV (data set format) or Parquet file")
    predict_parser.add_argument("--output", type=Path, help="predictions file, .csv or .parquet (default: CSV on stdout)")
    predict_parser.add_argument("--rejects", type=Path,
                                help="refused rows with reasons, CSV (default: <output>.rejects.csv)")
    predict_parser.add_argument("--include-features", action="store_true", help="also write the model features")
    predict_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict_parser.add_argument("--request-id", help="the stream's id (metadata x-request-id; default: the server "
                                                     "assigns one): the prediction log names row i `<id>/<i>`")
    predict_parser.add_argument("--request-id-column", metavar="NAME",
                                help="also write each row's request id (`<stream id>/<i>`, what the server's "
                                     "prediction log names it: join labels to it with `clients evaluate`) "
                                     "in the output column NAME")
    predict_parser.set_defaults(run=predict)
    server_parity.add_parser(commands, add_connection_arguments, client_from_args)
    drift_report.add_parser(commands, add_connection_arguments, client_from_args)
    live_evaluation.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader of stdout is gone: nothing more to say, and Python's flush at exit must not
        # fail again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    except (ValueError, OSError, raw_chunk.InputFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except PredictionError as error:
        print(f"error: {error}", file=sys.stderr)
        hint = transport_hint(error, insecure=getattr(args, "insecure", False))
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return EXIT_FAILED


def transport_hint(error: PredictionError, insecure: bool) -> str | None:
    """What a refused connection most likely means when client and server disagree on TLS."""
    if error.code != grpc.StatusCode.UNAVAILABLE:
        return None
    if not insecure and "WRONG_VERSION_NUMBER" in str(error):
        return "the server speaks plaintext: pass --insecure"
    if insecure and "Socket closed" in str(error):
        return "the server may require TLS: pass --ca-cert (and --cert/--key for mutual TLS) instead of --insecure"
    return None
