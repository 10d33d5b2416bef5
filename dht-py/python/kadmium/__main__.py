"""``python -m kadmium`` is the ``kadmium`` command."""

import sys

from kadmium.cli import main

sys.exit(main())
