"""The server's TLS credentials, checked before the port is opened.

gRPC reports any unusable certificate, key or client CA only as "Failed to bind" when the port is
added. Python's ssl module (the same OpenSSL formats: PEM) tells which file is wrong and why, so the
files go through it first and a bad one is a ConfigError (exit 78) naming it.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from absenteeism.config_io import ConfigError
from feature_service.settings import Settings, SettingsError


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read TLS file {path}: {error.strerror}") from None


def _no_password() -> bytes:
    return b""  # gRPC cannot use an encrypted key: fail the check rather than prompt for a password


def check_files(cert: Path, key: Path, client_ca: Path | None) -> None:
    """Raises ConfigError naming the file unless the certificate chain and the key are PEM, the key
    belongs to the certificate, and the client CA (if any) holds a PEM certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=str(cert))  # parses every certificate of the file
    except ssl.SSLError:
        raise ConfigError(f"TLS certificate {cert} holds no PEM certificate: pass the server's certificate "
                          "chain in PEM format") from None
    try:
        context.load_cert_chain(str(cert), str(key), password=_no_password)
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"TLS key {key} does not match the certificate {cert}: pass the key the "
                              "certificate was issued for") from None
        raise ConfigError(f"TLS key {key} is not an unencrypted PEM private key") from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except ssl.SSLError:
            raise ConfigError(f"TLS client CA {client_ca} holds no PEM certificate: pass the CA certificate "
                              "that signs the client certificates, in PEM format") from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """None for plaintext; raises ConfigError for an unreadable or unusable TLS file."""
    if settings.insecure:
        return None
    if settings.tls_cert is None or settings.tls_key is None:  # Settings refuses this: TLS needs both
        raise SettingsError("TLS is required: pass --tls-cert and --tls-key, or --insecure for plaintext")
    key, cert = _read(settings.tls_key), _read(settings.tls_cert)
    client_ca = _read(settings.tls_client_ca) if settings.tls_client_ca else None
    check_files(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)
