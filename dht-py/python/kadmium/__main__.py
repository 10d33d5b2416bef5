"""``python -m kadmium`` is the ``kadmium`` command."""

import sys

from kadmium.cli import main

if __name__ == "__main__":  # importing the module (e.g. stubtest) runs nothing
    sys.exit(main())
