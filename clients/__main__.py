import sys

from clients.client_cli import main

sys.exit(main())
