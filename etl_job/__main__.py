import os
import sys

# One BLAS thread, set before numpy loads OpenBLAS: the job's only BLAS calls are 19x19 grams of
# 65,536-row blocks, where a second thread gains nothing and, on cores shared with other processes,
# its busy-waiting made transform+fit 3-10x slower. The caller's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from etl_job.cli import main

sys.exit(main())
