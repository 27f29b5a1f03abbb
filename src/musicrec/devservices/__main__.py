"""``python -m musicrec.devservices up|down|status|...``."""

import sys

from musicrec.devservices.manager import main

if __name__ == "__main__":
    sys.exit(main())
