"""Health (grpc.health.v1) and reflection wiring: the one place that knows the served service names."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from absenteeism.v1 import prediction_service_pb2

PREDICTION_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# "" is the whole server; a checker may also ask for the prediction service by name.
_CHECKED = ("", PREDICTION_SERVICE)


class Health:
    """NOT_SERVING from the start until `serving()`; `shutting_down()` flips it back for good."""

    def __init__(self) -> None:
        self.servicer = health.HealthServicer(experimental_non_blocking=True)
        for name in _CHECKED:
            self.servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    def add_to(self, server: grpc.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)
        reflection.enable_server_reflection((PREDICTION_SERVICE, HEALTH_SERVICE, reflection.SERVICE_NAME), server)

    def serving(self) -> None:
        for name in _CHECKED:
            self.servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    def shutting_down(self) -> None:
        self.servicer.enter_graceful_shutdown()
