#!/usr/bin/env python
"""Fault injection: the suite lives with the tests (tests/faults.py); this is its command line, kept where the
README documents it:

    python scripts/faults.py [--fast] [-k word] [--merge] [--out DIR] [--keep]

See tests/faults.py for what each fault injects and what the table's columns count."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from faults import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
