"""`python -m etl_job ...` and the `etl-job` console script: both run main() here, which sets the
environment numpy reads at its import before the command line (cli.main) loads it."""

import os
import sys


def main() -> int:
    # One BLAS thread, set before numpy loads OpenBLAS: the job's only BLAS calls are 19x19 grams of
    # 65,536-row blocks, where a second thread gains nothing and, on cores shared with other processes,
    # its busy-waiting made transform+fit 3-10x slower. The caller's own setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    from etl_job.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
