"""`feature_service serve` with its predictor's CPU counted inside the server, for
bench/call_costs.py: FastPredictor.predict adds up the CPU time of the thread running it
(time.thread_time) over its calls, and on SIGUSR1 the server prints the totals so far as one JSON
line on stderr: {"event": "predictor_cpu", "seconds": S, "calls": N}. The count costs two clock
reads and a lock a call. For benchmarks only.

    python bench/timed_predictor_server.py serve --config ... (the flags of feature_service serve)
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism.online.fast import FastPredictor
from feature_service.__main__ import main

_lock = threading.Lock()
_totals = {"seconds": 0.0, "calls": 0}


def counted(predict):
    def predict_counted(self, records):
        start = time.thread_time()
        try:
            return predict(self, records)
        finally:
            spent = time.thread_time() - start
            with _lock:
                _totals["seconds"] += spent
                _totals["calls"] += 1

    return predict_counted


def report(*_) -> None:
    with _lock:
        line = json.dumps({"event": "predictor_cpu", **_totals})
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


if __name__ == "__main__":
    FastPredictor.predict = counted(FastPredictor.predict)  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, report)
    sys.exit(main())
