"""`python -m clients ...` and the `absenteeism-client` console script: both run main() here."""

import sys

from clients.client_cli import main

if __name__ == "__main__":
    sys.exit(main())
