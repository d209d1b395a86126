"""Where the server's CPU per Predict goes (issue 27): `python bench/serving.py --breakdown`.

Two kinds of figures, measured in one run on the same records (the bundled sample's):

- Whole servers, each its own process on 127.0.0.1, loaded by 8 callers in client processes apart
  from it, its CPU read from /proc before and after: the echo (bench/echo_server.py: gRPC, the
  decode of the same request and a constant answer: the floor; 8 worker threads, and 2 as our
  default), `feature_service serve` with monitoring off (--drift-window 0, no metrics port, no log),
  with the default flags (drift window, metrics port; its predictor's thread CPU counted inside the
  server by bench/timed_predictor_server.py), with the default flags but 8 workers (the default
  before 2026-12-07), and with the prediction log on at its default sample rate; the echo with 2
  workers answering each Predict with what our predictor answers for its record (nothing else of
  ours: no interceptors, servicer or monitoring); and the echo spending in
  each Predict, in Python, as much CPU as the in-process stages below add up to (holding the GIL as
  long as ours does outside gRPC: what gRPC costs at that pace). The servers run side by
  side and are measured in turns, round after round, so that a noisy neighbour slows them alike.
  No flag turns the call metrics off: the interceptors record them in every server.
- In process, each stage of a Predict call timed alone in a loop (CPU: time.process_time), calling
  the server's own objects as a call does: decode, interceptors, servicer, the predictor (whole,
  then its parts: records -> matrix, matrix -> arrays, raw validation, features, model), the drift
  window, the response. A part timed alone in a tight loop runs warmer than in sequence: the
  predictor's parts add up to less than the whole, and the table shows by how much. The whole
  predictor is timed once more with its thread asleep 0.5 ms before each call (thread CPU of the
  calls alone), as a server's worker waits between requests: what a call costs when the caches its
  last call warmed have gone cold, beside what it costs inside the loaded server.

The stages subtracted from the default server's CPU per call leave "gRPC and everything else":
gRPC's C core and its Python layer, the worker threads' hand-offs of the GIL, what the contexts'
locks cost, the metrics and reloader threads. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc._interceptor  # the pipeline gRPC's server runs the interceptors through on every call
import numpy as np
from prometheus_client import CollectorRegistry

from absenteeism import dataflow
from absenteeism.online import converters
from absenteeism.online.fast import FastPredictor
from absenteeism.online.predictor import Predictions
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc as pb_grpc
from bench import load
from bench.common import percentiles, process_tree_cpu_seconds, served
from feature_service.monitoring.drift_window import Unmonitored
from feature_service.monitoring.metrics import Metrics
from feature_service.monitoring.monitored_predictor import MonitoredPredictor, Monitoring
from feature_service.rpc.interceptors.call_metrics import MetricsInterceptor
from feature_service.rpc.interceptors.decode_guard import DecodeGuardInterceptor
from feature_service.rpc.interceptors.stream_limit import StreamLimitInterceptor
from feature_service.rpc.prediction_servicer import PredictionServicer
from feature_service.serving_state import Serving, ServingState
from feature_service.settings import Settings
from testkit.loopback import free_port
from testkit.server_process import ServerProcess

CLIENTS = 8  # the load: 8 concurrent callers, as many as the server's worker threads
PREDICT = "/absenteeism.v1.PredictionService/Predict"
ECHO_WORK = "echo + stages' CPU"
ECHO_2 = "echo, 2 workers"
ECHO_PREDICTOR = "echo + predictor, 2 workers"
DEFAULT_8 = "default, 8 workers"
SERVERS = ("echo", ECHO_2, ECHO_WORK, ECHO_PREDICTOR, "monitoring off", "default", DEFAULT_8, "default + log")
TIMED_PREDICTOR = "default"  # its predictor's own CPU is counted inside the server (timed_predictor_server)


# ---- whole servers ----------------------------------------------------------------------------------------


@dataclass
class ServerFigures:
    cpu_per_call: list[float]  # seconds, one per round
    sequential: list[float]  # seconds per call, every round's
    calls_per_s: list[float]  # one per round
    predictor_cpu_per_call: list[float]  # seconds, one per round: the predictor's, counted inside the server

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_per_call)

    @property
    def p50_ms(self) -> float:
        return percentiles(self.sequential)["p50"]


def echo_server(*flags: str) -> ServerProcess:
    echo = ServerProcess(None)  # started like the real server: it prints the same "serving" line
    echo.command = [sys.executable, str(Path(__file__).resolve().parent / "echo_server.py"), *flags]
    return echo


def servers(config: Path, log_folder: Path, work_seconds: float) -> dict[str, ServerProcess]:
    """The servers of the table (SERVERS). ServerProcess turns the metrics port off unless given one.
    ECHO_WORK is the echo spending `work_seconds` of CPU in Python in each Predict: a server that
    holds the GIL as long as ours does outside gRPC, to tell gRPC's share at that pace."""
    timed = ServerProcess(config, metrics_port=free_port())
    timed.command[1:3] = [str(Path(__file__).resolve().parent / "timed_predictor_server.py")]  # for -m feature_service
    return {
        "echo": echo_server(),
        ECHO_2: echo_server("--workers", "2"),
        ECHO_WORK: echo_server("--work-us", f"{work_seconds * 1e6:.1f}"),
        ECHO_PREDICTOR: echo_server("--workers", "2", "--predictor", str(config)),
        "monitoring off": ServerProcess(config, "--drift-window", "0"),
        TIMED_PREDICTOR: timed,
        DEFAULT_8: ServerProcess(config, "--workers", "8", metrics_port=free_port()),
        "default + log": ServerProcess(config, "--prediction-log", str(log_folder), metrics_port=free_port()),
    }


SERVER_CPU, CLIENT_CPU = 0, 1  # --pin


def pin_server(server: ServerProcess) -> None:
    """Every thread the server has now on SERVER_CPU (threads started later inherit it from theirs)."""
    for thread in os.listdir(f"/proc/{server.pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(thread), {SERVER_CPU})


def predictor_cpu(server: ServerProcess) -> tuple[float, int]:
    """(seconds, calls) the timed predictor server has counted so far: asked for with SIGUSR1."""
    told = len(server.events("predictor_cpu"))
    server.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while len(server.events("predictor_cpu")) == told:
        if time.monotonic() > deadline:
            raise RuntimeError("the timed predictor server did not report its predictor's CPU")
        time.sleep(0.01)
    entry = server.events("predictor_cpu")[-1]
    return entry["seconds"], entry["calls"]


def sequential_seconds(target: str, requests: Sequence[pb.PredictRequest]) -> list[float]:
    seconds = []
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.PredictionServiceStub(channel)
        stub.Predict(requests[0], wait_for_ready=True)
        for request in requests:
            start = time.perf_counter()
            stub.Predict(request)
            seconds.append(time.perf_counter() - start)
    return seconds


def measure_servers(config: Path, records: Sequence[Any], args: argparse.Namespace, work_seconds: float
                    ) -> dict[str, ServerFigures]:
    rounds = 1 if args.smoke else args.rounds
    seconds, sequential_calls = (0.3, 20) if args.smoke else (args.seconds, 1000)
    requests = [pb.PredictRequest(record=records[i % len(records)]) for i in range(sequential_calls)]
    serialized = [pb.PredictRequest(record=record).SerializeToString() for record in records]
    figures = {name: ServerFigures([], [], [], []) for name in SERVERS}
    with tempfile.TemporaryDirectory(prefix="bench-log-") as log_folder, contextlib.ExitStack() as stack:
        running = {name: stack.enter_context(server) for name, server in servers(config, Path(log_folder), work_seconds).items()}
        if args.pin:  # the client processes load.run starts inherit this process's CPU
            for server in running.values():
                pin_server(server)
            os.sched_setaffinity(0, {CLIENT_CPU})
        for server in running.values():  # warm-up (and the drift windows are no longer empty)
            sequential_seconds(server.target, requests[: min(200, len(requests))])
        for _ in range(rounds):
            for name, server in running.items():
                figures[name].sequential += sequential_seconds(server.target, requests)
                counted = predictor_cpu(server) if name == TIMED_PREDICTOR else None
                loaded = load.run(server.target, CLIENTS, args.client_processes, seconds, serialized,
                                  server_cpu=functools.partial(process_tree_cpu_seconds, server.pid),
                                  start_delay=2.0 if args.smoke else 3.0)
                figures[name].cpu_per_call.append(loaded.server_cpu_seconds / max(loaded.calls, 1))
                figures[name].calls_per_s.append(loaded.calls_per_s)
                if counted is not None:  # the load's calls only (counted after the sequential ones)
                    spent, calls = (after - before for after, before in zip(predictor_cpu(server), counted, strict=True))
                    figures[name].predictor_cpu_per_call.append(spent / max(calls, 1))
    return figures


# ---- in process: each stage of a Predict call alone ---------------------------------------------------------


class QuietContext:
    """What the interceptors and the servicer ask of a call's context, answered at no cost (a real
    context takes a lock for some of these: that cost stays in gRPC's share)."""

    def code(self) -> None:
        return None

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float:
        return 60.0  # the load's callers send a deadline

    def invocation_metadata(self) -> tuple:
        return ()

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"


@dataclass(frozen=True)
class CallDetails:
    method: str
    invocation_metadata: tuple = ()


class FixedPredictor:
    """Answers every call with the same Predictions: the servicer and monitoring timed without the predictor."""

    def __init__(self, result: Predictions, feature_names: tuple[str, ...]):
        self.result, self.feature_names = result, feature_names

    def predict(self, records: Sequence[Any]) -> Predictions:
        return self.result


def cpu_per_call(work: Callable[[Any], object], inputs: Sequence[Any], calls: int, repeats: int = 3) -> float:
    """CPU seconds per `work(item)`, cycling through `inputs`: the median of `repeats` timed loops."""
    items = [inputs[i % len(inputs)] for i in range(calls)]
    timings = []
    for _ in range(repeats):
        start = time.process_time()
        for item in items:
            work(item)
        timings.append((time.process_time() - start) / calls)
    return statistics.median(timings)


IDLE_GAP = 0.0005  # seconds: about a sequential caller's round trip, the server's core idle meanwhile


def cpu_per_call_after_idle(work: Callable[[Any], object], inputs: Sequence[Any], calls: int) -> float:
    """This thread's CPU seconds per `work(item)` when the thread sleeps IDLE_GAP before each call, as
    a server's worker waits for the next request: the caches it left warm may not be, the next time."""
    spent = 0.0
    for i in range(calls):
        time.sleep(IDLE_GAP)
        start = time.thread_time()
        work(inputs[i % len(inputs)])
        spent += time.thread_time() - start
    return spent / calls


@dataclass(frozen=True)
class Staged:
    """One record's values between the stages of FastPredictor.predict."""

    request: pb.PredictRequest
    data: bytes  # the request as sent
    raw: np.ndarray  # records_to_matrix's matrix
    arrays: dict[str, np.ndarray]  # its typed columns
    values: dict[str, Any]  # every planned step's value
    checked: np.ndarray | None  # the bounds test's float64 rows of the checked outputs
    features: np.ndarray  # the model's matrix
    result: Predictions


# FastPredictor.predict's stages (its own methods); stage_records checks they give its very bits.


def features(predictor: FastPredictor, arrays: dict[str, np.ndarray]) -> np.ndarray:
    values = predictor.computed(arrays)
    return predictor.model_matrix(values, predictor.checked(values, 1), 1)


def stage_records(predictor: FastPredictor, records: Sequence[Any]) -> list[Staged]:
    """Each record through the stages, checked to give the very bits predictor.predict gives (so
    that the stages timed are the ones the server runs)."""
    staged = []
    for record in records:
        raw, missing = converters.records_to_matrix([record])
        arrays = converters.matrix_to_arrays(raw)
        if missing or not predictor._all_within_bounds(raw):
            raise ValueError("the breakdown times valid records only")
        values = predictor.computed(arrays)
        checked = predictor.checked(values, 1)
        matrix = predictor.model_matrix(values, checked, 1)
        result = Predictions.of(matrix, predictor.model.predict(matrix), raw)
        served = predictor.predict([record])
        if not (np.array_equal(served.features, matrix) and np.array_equal(served.predictions, result.predictions)):
            raise RuntimeError("the stages no longer match FastPredictor.predict: update bench/call_costs.py")
        request = pb.PredictRequest(record=record)
        staged.append(Staged(request, request.SerializeToString(), raw, arrays, values, checked, matrix, result))
    return staged


def interceptor_call(interceptors: list[grpc.ServerInterceptor]) -> Callable[[Staged], object]:
    """One call through the server's interceptors, as gRPC runs them (its pipeline finds the
    handler, then the wrapped deserializer and behaviour run), around a behaviour that does nothing
    and a deserializer that hands the decoded request on: the interceptors' own work."""
    pipeline = grpc._interceptor.service_pipeline(interceptors)
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: None,
                                                  request_deserializer=lambda request: request)
    details, context = CallDetails(PREDICT), QuietContext()

    def call(staged: Staged) -> object:
        wrapped = pipeline.execute(lambda _: handler, details)
        return wrapped.unary_unary(wrapped.request_deserializer(staged.request), context)

    return call


def server_interceptors() -> list[grpc.ServerInterceptor]:
    """As PredictionServer.start builds them (with the default settings' stream limit)."""
    return [MetricsInterceptor(Metrics()), StreamLimitInterceptor(Settings(config=Path("unused"), insecure=True).stream_limit),
            DecodeGuardInterceptor()]


@dataclass(frozen=True)
class Row:
    """A line of the breakdown: `depth` 0 lines add up (with gRPC's share) to the server's CPU per
    call; a deeper line is a part of the line above it of one depth less."""

    depth: int
    label: str
    seconds: float  # CPU per call


@dataclass(frozen=True)
class InProcess:
    rows: list[Row]  # a default server's Predict, stage by stage
    log_offer: float  # CPU per call the prediction log adds (not on in a default server)
    predict_after_idle: float  # FastPredictor.predict's CPU per call with the thread idle between calls


def in_process(config_path: Path, records: Sequence[Any], smoke: bool) -> InProcess:
    settings, config, predictor = served(config_path)
    if not isinstance(predictor, FastPredictor) or not predictor.matrix_records:
        raise TypeError("the breakdown times the fast predictor's stages on records read as one matrix (absenteeism)")
    if not config.HasField("profile"):
        raise ValueError("the config carries no training profile: the default server would not monitor drift")
    staged = stage_records(predictor, records[:50] if smoke else records)
    calls = 200 if smoke else 5000

    def timed(work: Callable[[Staged], object]) -> float:
        return cpu_per_call(work, staged, calls)

    monitoring = Monitoring(settings.monitoring, dataflow.model_features(), CollectorRegistry(), lambda: None)
    _, drift = monitoring.attach(config, predictor)
    fixed = FixedPredictor(staged[0].result, predictor.feature_names)
    serving = Serving.of(config, fixed, drift)
    servicer = PredictionServicer(ServingState(serving), metrics=Metrics())
    context = QuietContext()
    monitored = MonitoredPredictor(fixed, drift, None, serving.config_id)  # the drift window alone, as by default
    build = timed(lambda s: servicer._response(serving, s.result, 0, False))
    predict = timed(lambda s: predictor.predict([s.request.record]))
    # FastPredictor.predict's parts, each timed alone (a tight loop of one part runs warmer than the whole)
    predictor_parts = [
        Row(1, "records -> matrix (records_to_matrix)", timed(lambda s: converters.records_to_matrix([s.request.record]))),
        Row(1, "matrix -> arrays (matrix_to_arrays)", timed(lambda s: converters.matrix_to_arrays(s.raw))),
        Row(1, "raw validation (bounds test of the raw matrix)", timed(lambda s: predictor._all_within_bounds(s.raw))),
        Row(1, "features", timed(lambda s: features(predictor, s.arrays))),
        Row(2, "Step.run loop (planned steps)", timed(lambda s: predictor.computed(s.arrays))),
        Row(2, "output bounds test", timed(lambda s: predictor.checked(s.values, 1))),
        Row(2, "model matrix (rows of the bounds test)", timed(lambda s: predictor.model_matrix(s.values, s.checked, 1))),
        Row(1, "model (served model predict)",
            timed(lambda s: Predictions.of(s.features, predictor.model.predict(s.features), s.raw))),
    ]
    parts_added = sum(row.seconds for row in predictor_parts if row.depth == 1)
    rows = [
        Row(0, "decode (PredictRequest.FromString)", timed(lambda s: pb.PredictRequest.FromString(s.data))),
        Row(0, "interceptors (metrics, stream limit, decode guard)", timed(interceptor_call(server_interceptors()))),
        Row(1, "MetricsInterceptor alone", timed(interceptor_call([MetricsInterceptor(Metrics())]))),
        # Predict itself with a predictor that answers at once, less the response it builds (a stage of its own)
        Row(0, "servicer (request id, deadline, labels, boundary)",
            timed(lambda s: servicer.Predict(s.request, context)) - build),
        Row(0, "predictor (FastPredictor.predict, whole)", predict),
        *predictor_parts,
        Row(1, "rest of predict (whole less its parts timed alone)", predict - parts_added),
        Row(0, "monitoring: drift window (MonitoredPredictor)", timed(lambda s: monitored.predict([s.request.record]))),
        Row(0, "response (build, serialize)",
            timed(lambda s: servicer._response(serving, s.result, 0, False).SerializeToString())),
    ]
    after_idle = cpu_per_call_after_idle(lambda s: predictor.predict([s.request.record]), staged, calls // 2)
    return InProcess(rows, prediction_log_offer(config, fixed, staged, calls), after_idle)


def prediction_log_offer(config: Any, fixed: FixedPredictor, staged: Sequence[Staged], calls: int) -> float:
    """CPU per call of what MonitoredPredictor adds when only the prediction log is on, at its
    default sample rate, its writer thread running (process_time counts every thread's CPU)."""
    with tempfile.TemporaryDirectory(prefix="bench-log-") as folder:
        settings = Settings(config=Path("unused"), insecure=True, drift_window=0, prediction_log=Path(folder))
        monitoring = Monitoring(settings.monitoring, dataflow.model_features(), CollectorRegistry(), lambda: None)
        monitoring.start()
        try:
            logged = MonitoredPredictor(fixed, Unmonitored("off"), monitoring.log, config.content_sha256)
            return cpu_per_call(lambda s: logged.predict([s.request.record]), staged, calls)
        finally:
            monitoring.close()


# ---- the report ---------------------------------------------------------------------------------------------

REST_LABEL = "gRPC and everything else (total less the stages)"
TOTAL_LABEL = "total: Predict, default flags (whole server)"
ECHO_LABEL = "echo server (gRPC, decode, a constant answer)"
ECHO_WORK_LABEL = "echo spending the stages' CPU in Python (whole server)"
INSIDE_LABEL = "predictor inside the loaded default server"
WIDTH = 58


def cost_line(label: str, seconds: float, echo_seconds: float) -> str:
    """A row of the breakdown: microseconds, and the fraction of the echo's CPU per call."""
    return f"{label:<{WIDTH}}{seconds * 1e6:>12.1f}{seconds / echo_seconds:>12.3f}"


def report(whole: dict[str, ServerFigures], measured: InProcess) -> None:
    echo, total = whole["echo"].cpu, whole["default"].cpu
    print(f"\nwhole servers: {CLIENTS} callers; server CPU per Predict: the median over rounds (and their "
          "least and most); sequential p50: over every round's calls")
    print(f"{'server':<{WIDTH}}{'CPU/call us':>12}{'/ echo':>12}{'least us':>12}{'most us':>12}{'p50 ms':>12}"
          f"{'/ echo':>12}{'calls/s':>12}")
    for name, figures in whole.items():
        print(cost_line(name, figures.cpu, echo) + f"{min(figures.cpu_per_call) * 1e6:>12.1f}"
              + f"{max(figures.cpu_per_call) * 1e6:>12.1f}" + f"{figures.p50_ms:>12.3f}"
              + f"{figures.p50_ms / whole['echo'].p50_ms:>12.3f}" + f"{statistics.median(figures.calls_per_s):>12.1f}")

    print("\nbreakdown of the default server's CPU per Predict (each stage in process, CPU per call)")
    print(f"{'stage':<{WIDTH}}{'us':>12}{'/ echo':>12}")
    for row in measured.rows:
        print(cost_line("  " * row.depth + row.label, row.seconds, echo))
    print(cost_line(REST_LABEL, total - sum(row.seconds for row in measured.rows if row.depth == 0), echo))
    print(cost_line(TOTAL_LABEL, total, echo))
    print(cost_line(ECHO_LABEL, echo, echo))
    print(cost_line(ECHO_WORK_LABEL, whole[ECHO_WORK].cpu, echo))

    print("\nthe predictor in process and inside the loaded default server (thread CPU per call)")
    alone = next(row.seconds for row in measured.rows if row.label.startswith("predictor (FastPredictor"))
    inside = statistics.median(whole[TIMED_PREDICTOR].predictor_cpu_per_call)
    print(cost_line("predictor in process (the stage above)", alone, echo))
    print(cost_line(f"predictor in process, idle {IDLE_GAP * 1e3:g} ms before each call",
                    measured.predict_after_idle, echo))
    print(cost_line(INSIDE_LABEL, inside, echo))
    print(cost_line("  more inside the server than in process", inside - alone, echo))

    print("\nthe predictor alone in a bare server (echo, 2 workers) and the rest of ours (us, / echo)")
    bare = whole[ECHO_PREDICTOR].cpu
    print(cost_line("echo, 2 workers", whole[ECHO_2].cpu, echo))
    print(cost_line("  + the predictor (its answer, nothing else of ours)", bare - whole[ECHO_2].cpu, echo))
    print(cost_line("  + interceptors, servicer, monitoring (the default server)", total - bare, echo))

    print("\nmonitoring, whole servers and in process (us, / echo)")
    drift = next(row.seconds for row in measured.rows if row.label.startswith("monitoring: drift window"))
    print(cost_line("monitoring off -> default, whole servers", total - whole["monitoring off"].cpu, echo))
    print(cost_line("  drift window, in process (the stage above)", drift, echo))
    print(cost_line("default -> default + log, whole servers", whole["default + log"].cpu - total, echo))
    print(cost_line("  prediction log offer, in process", measured.log_offer, echo))

    print("\ngoals (issue 27: at most 1.3 for CPU)")
    print(f"{'Predict server CPU / echo, default flags':<{WIDTH}}{total / echo:>12.2f}")
    print(f"{'Predict server CPU / echo, default + log':<{WIDTH}}{whole['default + log'].cpu / echo:>12.2f}")
    print(f"{'Predict server CPU / echo with 2 workers, default flags':<{WIDTH}}{total / whole[ECHO_2].cpu:>12.2f}")
    print(f"{'echo + predictor CPU / echo, both with 2 workers':<{WIDTH}}{bare / whole[ECHO_2].cpu:>12.2f}")
    print(f"{'Predict sequential p50 / echo p50, default flags':<{WIDTH}}"
          f"{whole['default'].p50_ms / whole['echo'].p50_ms:>12.2f}")


def breakdown(config: Path, records: Sequence[Any], args: argparse.Namespace) -> None:
    pinned = (f"; every server thread on CPU {SERVER_CPU}, the callers on CPU {CLIENT_CPU}" if args.pin else "")
    print(f"breakdown: {len(SERVERS)} servers side by side ({', '.join(SERVERS)}), {1 if args.smoke else args.rounds} "
          f"round(s) each of {CLIENTS} callers in {args.client_processes} client processes, taken in turns{pinned}; "
          "metrics are recorded in every server (no flag turns them off): their cost is in the interceptors' line")
    measured = in_process(config, records, args.smoke)
    stages = sum(row.seconds for row in measured.rows if row.depth == 0)
    print(f"in process, the stages of a Predict call add up to {stages * 1e6:.1f} us: {ECHO_WORK!r} spends as much")
    report(measure_servers(config, records, args, stages), measured)
