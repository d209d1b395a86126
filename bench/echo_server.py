"""A bare gRPC server for calibration: the same PredictionService contract, no work at all
(Predict answers a constant, PredictBatch one zero per record), no interceptors, no validation.
Its figures are the floor the machine allows a Python gRPC server; bench/serving.py prints them
beside the real server's.

    python bench/echo_server.py     # prints {"event": "serving", "port": N} on stderr
"""

from __future__ import annotations

import json
import signal
import sys
from concurrent import futures
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism.v1 import prediction_service_pb2 as pb  # noqa: E402
from absenteeism.v1 import prediction_service_pb2_grpc as pb_grpc  # noqa: E402


class EchoServicer(pb_grpc.PredictionServiceServicer):
    def Predict(self, request, context):
        return pb.PredictResponse(prediction=0.0)

    def PredictBatch(self, request, context):
        return pb.PredictBatchResponse(predictions=[0.0] * len(request.records))


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    pb_grpc.add_PredictionServiceServicer_to_server(EchoServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"event": "serving", "port": port}), file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
