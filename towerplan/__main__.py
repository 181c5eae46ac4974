"""``python -m towerplan`` = the ``towerplan`` command."""

import sys

from towerplan.cli import main

sys.exit(main())
