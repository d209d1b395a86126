"""`python -m etl_job ...` and the `etl-job` console script: both run main() here, which sets the
environment numpy reads at its import before the command line (cli.main) loads it, and keeps
Python's cyclic garbage collector off the objects that live as long as the process."""

import gc
import os
import sys


def main() -> int:
    # One BLAS thread, set before numpy loads OpenBLAS: the job's only BLAS calls are 19x19 grams of
    # 65,536-row blocks, where a second thread gains nothing and, on cores shared with other processes,
    # its busy-waiting made transform+fit 3-10x slower. The caller's own setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    # The imports leave about 100,000 objects that live until the process ends (modules, classes,
    # functions) and no garbage worth a collection: no full collection while they load, and none
    # afterwards that walks them all again (docs/performance.md).
    gc.disable()
    try:
        from etl_job.cli import main as cli_main

        gc.freeze()
    finally:
        gc.enable()
    status = cli_main()
    # Every output is written and closed by now. The interpreter's teardown would walk every
    # object left several times over to collect it; frozen, they go with the process at once.
    gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(main())
