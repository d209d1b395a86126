"""Container HEALTHCHECK: ask the server's grpc.health.v1 service whether it is SERVING.

Runs inside the server image (Dockerfile HEALTHCHECK) with the server's own environment, so it
reads the same FEATURE_SERVICE_* variables the server does: the port, and whether the server
speaks plaintext (FEATURE_SERVICE_INSECURE) or TLS. For TLS it trusts FEATURE_SERVICE_HEALTHCHECK_CA
(default: the server's own certificate, right for a self-signed one) and, when the server asks
for client certificates, presents FEATURE_SERVICE_HEALTHCHECK_CERT/_KEY.

Exit 0 = SERVING, 1 = anything else (the reason goes to stderr, which the engine records).
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_TRUE = {"1", "true", "yes", "on"}


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"FEATURE_SERVICE_{name}", default).strip()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _channel(target: str) -> grpc.Channel:
    if _env("INSECURE").lower() in _TRUE or not _env("TLS_CERT"):
        return grpc.insecure_channel(target)
    ca = _env("HEALTHCHECK_CA") or _env("TLS_CERT")
    cert, key = _env("HEALTHCHECK_CERT"), _env("HEALTHCHECK_KEY")
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(ca),
        private_key=_read(key) if key else None,
        certificate_chain=_read(cert) if cert else None,
    )
    # The server's certificate names a host, not 127.0.0.1; override it when told to.
    options = []
    if _env("HEALTHCHECK_SERVER_NAME"):
        options.append(("grpc.ssl_target_name_override", _env("HEALTHCHECK_SERVER_NAME")))
    return grpc.secure_channel(target, creds, options=options)


def main() -> int:
    target = f"127.0.0.1:{_env('PORT', '50051')}"
    try:
        with _channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=3
            )
    except (grpc.RpcError, OSError) as exc:
        detail = exc.details() if isinstance(exc, grpc.RpcError) else str(exc)
        print(f"healthcheck: {target} unreachable: {detail}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"healthcheck: {target} is {status}", file=sys.stderr)
        return 1
    print(f"healthcheck: {target} {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
