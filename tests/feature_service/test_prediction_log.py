"""The prediction log, through real server processes: sampled predictions land in whole Parquet
files (never half a file: not on rotation, SIGTERM, SIGKILL or a full disk), and replay bit for bit
through the batch path (`python -m clients parity --prediction-log DIR --config CONFIG`)."""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from absenteeism import absenteeism_schema
from absenteeism.dataset import prediction_log_files as log_format
from absenteeism.online import converters
from clients import PredictionClient
from testkit.loopback import free_port
from testkit.server_process import ServerProcess
from testkit.supervised_servers import wait_for

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


@pytest.fixture(scope="module")
def records(trained_config):
    return converters.frame_to_records(trained_config.accepted.loc[:, list(absenteeism_schema.RAW_COLUMN_NAMES)])


def send_every_way(target: str, records) -> int:
    """Predict, PredictBatch and PredictStream, in that order; returns how many records were served."""
    with PredictionClient(target, insecure=True) as client:
        for record in records[:200]:
            client.predict(record)
        for start in range(200, len(records), 500):
            client.predict_batch(records[start:start + 500])
        assert all(result.ok for result in client.predict_stream(records[:300]))
    return len(records) + 300


def parity(folder: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clients", "parity", "--prediction-log", str(folder),
                           "--config", str(config)], capture_output=True, text=True, timeout=300)


def logged_rows(folder: Path) -> pd.DataFrame:
    return pd.concat([pq.read_table(path).to_pandas() for path in log_format.complete_files(folder)],
                     ignore_index=True)


def hidden_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def metric(port: int, name: str, **labels) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def test_logged_traffic_replays_bit_for_bit_and_a_skewed_value_is_named(trained_config, records, tmp_path):
    folder = tmp_path / "log"
    with ServerProcess(trained_config.path, "--prediction-log", str(folder),
                       "--prediction-log-sample-rate", "1") as server:
        sent = send_every_way(server.target, records)
    assert server.returncode == 0  # SIGTERM: the open file was published on the way out
    assert hidden_files(folder) == []
    logged = logged_rows(folder)
    assert len(logged) == sent and set(logged[log_format.CONFIG_ID]) == {trained_config.config.content_sha256}
    expected_raw = converters.records_to_matrix([*records, *records[:300]])[0]
    np.testing.assert_array_equal(logged.loc[:, list(absenteeism_schema.RAW_COLUMN_NAMES)].to_numpy(np.float64),
                                  expected_raw)  # every record, as sent, in the order served

    result = parity(folder, trained_config.path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{sent} logged records replayed through the batch path" in result.stdout
    assert f"{sent} identical" in result.stdout and "PARITY: identical" in result.stdout

    # One feature value edited by one ulp in one file: caught, with the feature, file and row named.
    skewed = tmp_path / "skewed"
    shutil.copytree(folder, skewed)
    victim = log_format.complete_files(skewed)[0]
    table = pq.read_table(victim)
    column = table.column("age_zero_mean_unit_variance").to_numpy().copy()
    column[7] = np.nextafter(column[7], np.inf)
    index = table.schema.get_field_index("age_zero_mean_unit_variance")
    pq.write_table(table.set_column(index, table.schema.field(index), pa.array(column)), victim)
    result = parity(skewed, trained_config.path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"{sent - 1} identical" in result.stdout and "PARITY: MISMATCH" in result.stdout
    assert victim.name in result.stdout and "age_zero_mean_unit_variance: 1 mismatches; worst: row 7:" in result.stdout


def test_files_rotate_by_size_and_every_one_is_whole(trained_config, records, tmp_path):
    """Each wave's rows (about half of ~2,300 records, far over 20,000 bytes) close a file by size
    while the server serves: waited for on the files metric, not assumed after a sleep."""
    folder, port = tmp_path / "log", free_port()
    with ServerProcess(trained_config.path, "--prediction-log", str(folder), "--prediction-log-sample-rate", "0.5",
                       "--prediction-log-rotate-bytes", "20000", metrics_port=port) as server:
        for wave in range(1, 4):
            send_every_way(server.target, records)
            wait_for(lambda wave=wave: metric(port, "feature_service_prediction_log_files_total") >= wave,
                     timeout=60, what=f"a file published by size after wave {wave}")
        files_so_far = metric(port, "feature_service_prediction_log_files_total")
    files = log_format.complete_files(folder)
    assert len(files) >= 3 and files_so_far >= 3 and hidden_files(folder) == []
    assert parity(folder, trained_config.path).returncode == 0


def in_window(logged_at_us: np.ndarray, window: tuple[int, int]) -> int:
    return int(((logged_at_us >= window[0]) & (logged_at_us <= window[1])).sum())


def now_us() -> int:
    return time.time_ns() // 1000


def test_each_method_logs_the_sample_rate_share_of_its_predictions(trained_config, records, tmp_path):
    """With rate r = 0.25, each method's logged count (told apart by `logged_at`: the methods are
    called one after the other) lies within 5 binomial sigmas of N r. With N = 1,000 that is
    250 +- 69, so a rate of 2r (500), r/2 (125) or 1 - r (750) fails; Predict and PredictBatch
    draw their samples on different code paths (one record, many), so each is checked."""
    rate, calls, batch_rows = 0.25, 1_000, 10_000
    folder = tmp_path / "log"
    windows: dict[str, tuple[int, int]] = {}
    with (ServerProcess(trained_config.path, "--prediction-log", str(folder), "--prediction-log-sample-rate",
                        str(rate)) as server,
          PredictionClient(server.target, insecure=True) as client):
        start = now_us()
        for k in range(calls):
            client.predict(records[k % len(records)])
        windows["Predict"] = (start, now_us())
        start = now_us()
        for begin in range(0, batch_rows, 1_000):
            client.predict_batch([records[k % len(records)] for k in range(begin, begin + 1_000)])
        windows["PredictBatch"] = (start, now_us())
        start = now_us()
        assert all(result.ok for result in client.predict_stream(records[k % len(records)] for k in range(calls)))
        windows["PredictStream"] = (start, now_us())
    assert server.returncode == 0  # SIGTERM published the open file
    logged_at = np.concatenate([pq.read_table(path).column(log_format.LOGGED_AT).cast("int64").to_numpy()
                                for path in log_format.complete_files(folder)])
    served = {"Predict": calls, "PredictBatch": batch_rows, "PredictStream": calls}
    assert sum(in_window(logged_at, window) for window in windows.values()) == len(logged_at)
    for method, n in served.items():
        mean, sigma = n * rate, math.sqrt(n * rate * (1 - rate))
        count = in_window(logged_at, windows[method])
        assert abs(count - mean) <= 5 * sigma, f"{method}: {count} of {n} logged, expected {mean:.0f} +- {5 * sigma:.0f}"


def _limited_file_size(server: ServerProcess, limit: int) -> ServerProcess:
    """The same server command, run with RLIMIT_FSIZE: writing past `limit` bytes fails (EFBIG), as on a full disk."""
    wrapper = ("import resource, runpy, sys; "
               f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
               "sys.argv = ['feature_service', *sys.argv[1:]]; "
               "runpy.run_module('feature_service', run_name='__main__', alter_sys=True)")
    server.command = [sys.executable, "-c", wrapper, *server.command[3:]]
    return server


def test_a_full_disk_drops_samples_counts_them_and_serving_goes_on(trained_config, records, tmp_path):
    folder, port = tmp_path / "log", free_port()
    server = _limited_file_size(ServerProcess(trained_config.path, "--prediction-log", str(folder),
                                              "--prediction-log-sample-rate", "1", metrics_port=port), 30_000)
    with server:
        sent = send_every_way(server.target, records)  # every call answered
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            dropped = metric(port, "feature_service_prediction_log_dropped_total", reason="write_failed")
            written = metric(port, "feature_service_prediction_log_records_total")
            if dropped + written == sent:
                break
            time.sleep(0.5)
        assert dropped > 0 and dropped + written == sent  # nothing lost without being counted
        with PredictionClient(server.target, insecure=True) as client:
            assert client.predict(records[0]).prediction == trained_config.predictions.iloc[0]  # still serving
    assert server.returncode == 0
    assert any('"event": "prediction_log_failed"' in line for line in server.logs)
    assert hidden_files(folder) == []  # the file that could not be written was removed whole
    for path in log_format.complete_files(folder):
        pq.read_table(path)  # any file there is whole


def test_a_killed_server_leaves_no_file_half_written(trained_config, records, tmp_path):
    folder = tmp_path / "log"
    with ServerProcess(trained_config.path, "--prediction-log", str(folder),
                       "--prediction-log-sample-rate", "1") as server:
        send_every_way(server.target, records)
        wait_for(lambda: any(path.stat().st_size > len(b"PAR1") for path in folder.glob(".*")), timeout=60,
                 what="a row group in the open (hidden) file")  # more than the Parquet header
        server.stop(signal.SIGKILL)
    assert log_format.complete_files(folder) == [] and len(hidden_files(folder)) == 1  # only the temp name
    with ServerProcess(trained_config.path, "--prediction-log", str(folder)) as restarted:
        pass
    assert hidden_files(folder) == []  # the next server removed it
    assert any('"event": "prediction_log_stale"' in line for line in restarted.logs)


def test_replay_refuses_a_log_without_records_of_that_config(trained_config, records, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = parity(empty, trained_config.path)
    assert result.returncode == 2 and "holds no prediction log file" in result.stderr
    folder = tmp_path / "log"
    with (ServerProcess(trained_config.path, "--prediction-log", str(folder),
                       "--prediction-log-sample-rate", "1") as server,
          PredictionClient(server.target, insecure=True) as client):
        client.predict_batch(records[:50])
    table = pq.read_table(log_format.complete_files(folder)[0])
    other = table.set_column(1, log_format.CONFIG_ID, pa.array(["f" * 64] * len(table)))
    pq.write_table(other, log_format.complete_files(folder)[0])
    result = parity(folder, trained_config.path)
    assert result.returncode == 2 and f"no record in {folder} was served with config" in result.stderr
    usage = subprocess.run([sys.executable, "-m", "clients", "parity", "--prediction-log", str(folder)],
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "--prediction-log DIR and --config CONFIG" in usage.stderr


def test_files_rotate_by_age_and_every_one_is_whole(trained_config, records, tmp_path):
    """Far below the size limit, each wave's file is published by its age (1 s) while the server
    serves: waited for (polling, generous timeout), before the stop could close it."""
    folder = tmp_path / "log"
    with ServerProcess(trained_config.path, "--prediction-log", str(folder), "--prediction-log-sample-rate", "1",
                       "--prediction-log-rotate-seconds", "1") as server:
        for wave in range(1, 3):
            send_every_way(server.target, records[:20])
            wait_for(lambda wave=wave: len(log_format.complete_files(folder)) >= wave, timeout=60,
                     what=f"a file published by age after wave {wave}")
        files_while_serving = len(log_format.complete_files(folder))  # before the stop closes the last one
    assert files_while_serving >= 2 and hidden_files(folder) == []
    assert parity(folder, trained_config.path).returncode == 0


def _invalid(record):
    broken = type(record)()
    broken.CopyFrom(record)
    broken.age = 5  # outside the raw schema's range: refused
    return broken


def test_request_ids_are_returned_and_name_the_logged_records(trained_config, records, tmp_path):
    """A caller's x-request-id is used, an absent one assigned (uuid4 hex); Predict logs the id,
    PredictBatch record i `<id>/<i>`, PredictStream message i `<id>/<i>` (refused messages counted)."""
    folder = tmp_path / "log"
    with (ServerProcess(trained_config.path, "--prediction-log", str(folder),
                        "--prediction-log-sample-rate", "1") as server,
          PredictionClient(server.target, insecure=True) as client):
        given = client.predict(records[0], request_id="order-17")
        assigned = client.predict(records[1])
        batch = client.predict_batch(records[2:5], request_id="batch:1")
        assigned_batch = client.predict_batch(records[5:7])
        stream = list(client.predict_stream([records[7], records[8], _invalid(records[9]), records[10]],
                                            request_id="stream 1"))
        assigned_stream = list(client.predict_stream(records[11:13]))
    assert server.returncode == 0
    assert given.request_id == "order-17"
    assert len(assigned.request_id) == 32 and int(assigned.request_id, 16) >= 0  # uuid4 hex
    assert batch.request_id == "batch:1" and batch.record_ids == ["batch:1/0", "batch:1/1", "batch:1/2"]
    assert len(assigned_batch.request_id) == 32 and assigned_batch.request_id != assigned.request_id
    assert [r.request_id for r in stream] == ["stream 1/0", "stream 1/1", "stream 1/2", "stream 1/3"]
    assert [r.ok for r in stream] == [True, True, False, True]
    stream_id = assigned_stream[0].request_id.split("/")[0]
    assert len(stream_id) == 32 and [r.request_id for r in assigned_stream] == [f"{stream_id}/0", f"{stream_id}/1"]

    logged = logged_rows(folder).set_index(log_format.REQUEST_ID)
    expected = {"order-17": given.prediction, assigned.request_id: assigned.prediction,
                **dict(zip(batch.record_ids, batch.predictions)),
                **dict(zip(assigned_batch.record_ids, assigned_batch.predictions)),
                **{r.request_id: r.prediction.prediction for r in [*stream, *assigned_stream] if r.prediction}}
    assert sorted(logged.index) == sorted(expected)  # the refused stream message is not logged
    assert {name: logged.loc[name, log_format.PREDICTION] for name in expected} == expected
    assert logged.loc["stream 1/3", "age"] == records[10].age  # the name is the message's, not its place in the batch


@pytest.mark.parametrize("bad", ["x" * 129, "", "caf\u00e9"])
def test_a_bad_request_id_is_refused_naming_the_key(plaintext_server, records, bad):
    """Each predict method: INVALID_ARGUMENT whose message and BadRequest name x-request-id."""
    import grpc

    from clients import PredictionError

    with PredictionClient(plaintext_server.target, insecure=True) as client:
        calls = [lambda: client.predict(records[0], request_id=bad),
                 lambda: client.predict_batch(records[:2], request_id=bad),
                 lambda: list(client.predict_stream(records[:2], request_id=bad))]
        for call in calls:
            if not bad.isascii():  # not legal in a header: the client refuses it before gRPC would
                with pytest.raises(ValueError, match="x-request-id must be printable ASCII"):
                    call()
                continue
            with pytest.raises(PredictionError) as refused:
                call()
            assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert "metadata x-request-id" in refused.value.message
            assert [v.field for v in refused.value.violations] == ["x-request-id"]
        assert client.predict(records[0], request_id="fine").request_id == "fine"  # the server goes on


def test_an_old_log_without_request_ids_still_replays(trained_config, records, tmp_path):
    folder = tmp_path / "log"
    with (ServerProcess(trained_config.path, "--prediction-log", str(folder),
                        "--prediction-log-sample-rate", "1") as server,
          PredictionClient(server.target, insecure=True) as client):
        client.predict_batch(records[:50])
    path = log_format.complete_files(folder)[0]
    table = pq.read_table(path)
    pq.write_table(table.drop_columns([log_format.REQUEST_ID]), path)  # as a release before request ids wrote it
    assert log_format.REQUEST_ID not in pq.read_schema(path).names
    result = parity(folder, trained_config.path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "50 identical" in result.stdout
