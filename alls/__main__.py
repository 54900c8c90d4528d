"""``python -m alls`` runs the command line."""

import sys

from alls.cli import main

sys.exit(main())
