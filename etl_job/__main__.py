import sys

from etl_job.cli import main

sys.exit(main())
