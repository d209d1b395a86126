"""Micro-batching: concurrent calls computed together give each caller exactly its own answer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from absenteeism.online import converters
from absenteeism.online import predictor as online
from absenteeism.online.fast import FastPredictor
from clients import PredictionClient
from feature_service.rpc.micro_batching import MicroBatchingPredictor
from testkit.records import VALID_ROW

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


def records_for(ages):
    return converters.frame_to_records(pd.DataFrame([{**VALID_ROW, "age": a} for a in ages]))


class SlowPredictor:
    """Holds each batch a moment so that concurrent calls pile up behind it."""

    def __init__(self, inner):
        self.inner, self.feature_names, self.batches = inner, inner.feature_names, []
        self.gate = threading.Event()

    def predict(self, records):
        self.batches.append(len(records))
        self.gate.wait(0.05)
        return self.inner.predict(records)


def test_concurrent_calls_are_batched_and_each_gets_its_own_bits(config):
    fast = FastPredictor(config)
    slow = SlowPredictor(fast)
    seen = []
    batcher = MicroBatchingPredictor(slow, max_rows=64, on_batch=lambda calls, rows: seen.append((calls, rows)))
    requests = [records_for([16 + (i % 80)]) for i in range(200)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(batcher.predict, requests))
    for request, result in zip(requests, results):
        alone = fast.predict(request)
        assert np.array_equal(result.features.view(np.uint64), alone.features.view(np.uint64))
        assert np.array_equal(result.predictions.view(np.uint64), alone.predictions.view(np.uint64))
    assert max(slow.batches) > 1, "concurrent calls were never combined"
    assert max(slow.batches) <= 64
    assert sum(rows for _, rows in seen) == 200


class ThreadRecorder:
    """Records which thread computed each batch, and holds batches of `hold_rows` rows or fewer
    until `release` is set (so that a batch can be kept in progress)."""

    def __init__(self, inner, hold_rows: int = 0):
        self.inner, self.feature_names, self.hold_rows = inner, inner.feature_names, hold_rows
        self.threads: list[tuple[int, int]] = []  # (thread id, rows) per predictor call
        self.release, self.holding = threading.Event(), threading.Event()

    def predict(self, records):
        self.threads.append((threading.get_ident(), len(records)))
        if len(records) <= self.hold_rows:
            self.holding.set()
            assert self.release.wait(30), "the held batch was never released"
        return self.inner.predict(records)


def test_an_idle_call_is_computed_at_once_by_its_own_thread(config):
    recorder, batches = ThreadRecorder(FastPredictor(config)), []
    batcher = MicroBatchingPredictor(recorder, on_batch=lambda calls, rows: batches.append((calls, rows)))
    result = batcher.predict(records_for([30, 40]))
    assert result.features.shape == (2, len(batcher.feature_names))
    assert recorder.threads == [(threading.get_ident(), 2)]  # the caller's own thread, no hand-off
    assert batches == [(1, 2)]


def test_a_bad_record_fails_only_its_own_call_with_its_own_row_numbers(config):
    slow = SlowPredictor(FastPredictor(config))
    batcher = MicroBatchingPredictor(slow, max_rows=64)
    good, bad = records_for([30, 31]), records_for([32, 200])
    barrier = threading.Barrier(2)

    def call(records):
        barrier.wait()
        try:
            return batcher.predict(records)
        except online.InvalidRecords as error:
            return error

    with ThreadPoolExecutor(max_workers=2) as pool:
        good_result, bad_result = pool.map(call, [good, bad])
    assert isinstance(good_result, online.Predictions) and good_result.features.shape[0] == 2
    assert isinstance(bad_result, online.InvalidRecords)
    assert [(v.row, v.column) for v in bad_result.violations] == [(1, "age")]


def test_large_calls_bypass_the_queue(config):
    """A call of more than max_rows records is computed at once on its own thread, even while a
    batch is in progress: it neither waits behind that batch nor joins the queue."""
    recorder, batches = ThreadRecorder(FastPredictor(config), hold_rows=4), []
    batcher = MicroBatchingPredictor(recorder, max_rows=4, on_batch=lambda calls, rows: batches.append((calls, rows)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        small = pool.submit(batcher.predict, records_for([30]))
        assert recorder.holding.wait(30), "the small call never reached the predictor"
        large = pool.submit(batcher.predict, records_for(range(20, 30)))
        try:
            assert large.result(timeout=30).features.shape[0] == 10  # while the small batch is held
        finally:
            recorder.release.set()
        assert small.result(timeout=30).features.shape[0] == 1
    assert sorted(rows for _, rows in recorder.threads) == [1, 10]
    assert batches == [(1, 1)]  # the large call never went through the queue


def test_an_unexpected_error_reaches_every_waiting_caller(config):
    class Broken:
        feature_names = ()

        def predict(self, records):
            raise RuntimeError("boom")

    batcher = MicroBatchingPredictor(Broken())
    with pytest.raises(RuntimeError, match="boom"):
        batcher.predict(records_for([30]))
    with pytest.raises(RuntimeError, match="boom"):  # the lead was given up: the next call is not stuck
        batcher.predict(records_for([30]))


def test_the_server_micro_batches_concurrent_predict_calls_and_counts_them(trained_config):
    import re
    import urllib.request

    from testkit.loopback import free_port
    from testkit.server_process import ServerProcess

    records = converters.frame_to_records(trained_config.accepted.head(400))
    expected = trained_config.predictions.head(400).to_numpy()
    with ServerProcess(trained_config.path, "--micro-batch-rows", "64", metrics_port=free_port()) as server, \
            PredictionClient(server.target, insecure=True, timeout=30) as client, \
            ThreadPoolExecutor(max_workers=16) as pool:
        got = np.array([p.prediction for p in pool.map(client.predict, records)])
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    assert server.returncode == 0, "\n".join(server.logs)  # SIGTERM with metrics on: a clean exit
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))
    batches = float(re.search(r"^feature_service_micro_batch_calls_count (\S+)$", metrics, re.MULTILINE).group(1))
    calls = float(re.search(r"^feature_service_micro_batch_calls_sum (\S+)$", metrics, re.MULTILINE).group(1))
    assert calls >= 400 and 0 < batches <= calls  # every Predict went through the batcher
