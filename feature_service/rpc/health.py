"""Health (grpc.health.v1) and reflection wiring: the one place that knows the served service names."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class Health:
    """NOT_SERVING from the start until `serving()`; `shutting_down()` flips it back for good.
    "" is the whole server; a checker may also ask for the prediction service by name."""

    def __init__(self) -> None:
        self.servicer = health.HealthServicer(experimental_non_blocking=True)
        self.checked = [""]
        self.servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)

    def add_to(self, server: grpc.Server, prediction_service: str) -> None:
        """Health and reflection on `server`, which serves `prediction_service` (the full name of
        the data set's PredictionService)."""
        self.checked.append(prediction_service)
        self.servicer.set(prediction_service, health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)
        reflection.enable_server_reflection((prediction_service, HEALTH_SERVICE, reflection.SERVICE_NAME), server)

    def serving(self) -> None:
        for name in self.checked:
            self.servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    def shutting_down(self) -> None:
        self.servicer.enter_graceful_shutdown()
