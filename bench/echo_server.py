"""A bare gRPC server for calibration: the same PredictionService contract, no work at all
(Predict answers a constant, PredictBatch one zero per record), no interceptors, no validation.
Its figures are the floor the machine allows a Python gRPC server; bench/serving.py prints them
beside the real server's.

    python bench/echo_server.py          # grpc.server (threads), as feature_service uses
    python bench/echo_server.py --aio    # grpc.aio.server (one asyncio loop): the same work
    python bench/echo_server.py --work-us 130   # threads; each Predict first spends 130 us of CPU in Python
    python bench/echo_server.py --workers 2     # threads: 2 instead of 8 (feature_service's default --workers)
    python bench/echo_server.py --predictor serving_config.pb   # threads; Predict answers what
        # feature_service's predictor for that config answers (FastPredictor.predict of the record), nothing else
    # both print {"event": "serving", "port": N} on stderr
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc as pb_grpc

OPTIONS = [("grpc.max_receive_message_length", 64 << 20)]


class EchoServicer(pb_grpc.PredictionServiceServicer):
    def __init__(self, work_seconds: float = 0.0, predictor=None):
        self._work_seconds = work_seconds
        self._predictor = predictor

    def Predict(self, request, context):
        if self._work_seconds:
            busy(self._work_seconds)
        if self._predictor is not None:
            return pb.PredictResponse(prediction=float(self._predictor.predict([request.record]).predictions[0]))
        return pb.PredictResponse(prediction=0.0)

    def PredictBatch(self, request, context):
        return pb.PredictBatchResponse(predictions=[0.0] * len(request.records))


class AsyncEchoServicer(pb_grpc.PredictionServiceServicer):
    async def Predict(self, request, context):
        return pb.PredictResponse(prediction=0.0)

    async def PredictBatch(self, request, context):
        return pb.PredictBatchResponse(predictions=[0.0] * len(request.records))


def busy(seconds: float) -> None:
    """Python bytecode for `seconds` of this thread's CPU, holding the GIL as a handler's Python work does
    (what a server doing the same work as ours besides gRPC would pay: bench/call_costs.py)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _serving(port: int) -> None:
    print(json.dumps({"event": "serving", "port": port}), file=sys.stderr, flush=True)


def threads(work_seconds: float = 0.0, workers: int = 8, predictor=None) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=OPTIONS)
    # only the calls it measures: the generated base answers UNIMPLEMENTED to the rest (abstract in the stubs only)
    pb_grpc.add_PredictionServiceServicer_to_server(EchoServicer(work_seconds, predictor), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    _serving(port)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


async def asynchronous() -> None:
    server = grpc.aio.server(options=OPTIONS)
    # only the calls it measures: the generated base answers UNIMPLEMENTED to the rest (abstract in the stubs only)
    pb_grpc.add_PredictionServiceServicer_to_server(AsyncEchoServicer(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _serving(port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    arguments = sys.argv[1:]

    def value(flag: str, default: float) -> float:
        return float(arguments[arguments.index(flag) + 1]) if flag in arguments else default

    if "--aio" in arguments:
        asyncio.run(asynchronous())
    else:
        predictor = None
        if "--predictor" in arguments:  # only then: the plain echo loads nothing of the project's
            from bench.common import served

            predictor = served(Path(arguments[arguments.index("--predictor") + 1]))[2]
        threads(value("--work-us", 0.0) / 1e6, int(value("--workers", 8)), predictor)
