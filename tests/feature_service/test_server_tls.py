"""TLS and mutual TLS with certificates made for the test; clients without the right cert are refused."""

from __future__ import annotations

import grpc
import pytest

from absenteeism.online import converters
from clients import PredictionClient, PredictionError, TlsOptions
from testkit.bits import assert_same_bits
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


@pytest.fixture(scope="module")
def record(trained_config):
    return converters.frame_to_records(trained_config.accepted.iloc[:1])[0]


@pytest.fixture(scope="module")
def tls_server(trained_config, certificates):
    with ServerProcess(trained_config.path, "--tls-cert", str(certificates["server.crt"]), "--tls-key",
                       str(certificates["server.key"]), insecure=False) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(trained_config, certificates):
    with ServerProcess(trained_config.path, "--tls-cert", str(certificates["server.crt"]), "--tls-key",
                       str(certificates["server.key"]), "--tls-client-ca", str(certificates["ca"]),
                       insecure=False) as server:
        yield server


def refused(target, record, **client_options) -> grpc.StatusCode:
    with (PredictionClient(target, timeout=5, retries=0, **client_options) as client,
          pytest.raises(PredictionError) as caught):
        client.predict(record)
    return caught.value.code


def test_tls_server_serves_a_client_that_trusts_its_ca(tls_server, certificates, record, trained_config):
    assert any('"security": "tls"' in line for line in tls_server.logs)
    with PredictionClient(tls_server.target, tls=TlsOptions.from_files(certificates["ca"]), timeout=10) as client:
        answer = client.predict(record, include_features=True)
    assert_same_bits(answer.prediction, trained_config.predictions.iloc[0])
    assert_same_bits(list(answer.features.values()), trained_config.features.iloc[0])


def test_tls_server_refuses_plaintext_and_untrusting_clients(tls_server, certificates, record):
    assert refused(tls_server.target, record, insecure=True) == grpc.StatusCode.UNAVAILABLE
    wrong_ca = TlsOptions.from_files(certificates["other_ca"])
    assert refused(tls_server.target, record, tls=wrong_ca) == grpc.StatusCode.UNAVAILABLE


def test_mtls_server_serves_a_client_with_a_cert_from_its_client_ca(mtls_server, certificates, record,
                                                                    trained_config):
    assert any('"security": "mtls"' in line for line in mtls_server.logs)
    tls = TlsOptions.from_files(certificates["ca"], certificates["client.crt"], certificates["client.key"])
    with PredictionClient(mtls_server.target, tls=tls, timeout=10) as client:
        answer = client.predict(record, include_features=True)
    assert_same_bits(answer.prediction, trained_config.predictions.iloc[0])
    assert_same_bits(list(answer.features.values()), trained_config.features.iloc[0])


def test_mtls_server_refuses_clients_without_the_right_cert(mtls_server, certificates, record):
    no_cert = TlsOptions.from_files(certificates["ca"])
    assert refused(mtls_server.target, record, tls=no_cert) == grpc.StatusCode.UNAVAILABLE
    other_cert = TlsOptions.from_files(certificates["ca"], certificates["other.crt"], certificates["other.key"])
    assert refused(mtls_server.target, record, tls=other_cert) == grpc.StatusCode.UNAVAILABLE
    assert refused(mtls_server.target, record, insecure=True) == grpc.StatusCode.UNAVAILABLE
