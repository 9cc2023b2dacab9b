"""`python -m sale.assets fetch|verify|plan ...`: the pool's model files (the code lives in sale.llm.assets)."""

import sys

from sale.llm.assets import main

if __name__ == "__main__":
    sys.exit(main())
