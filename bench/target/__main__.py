"""``python -m bench.target``: the same as ``nucleus-bench target``."""

import sys

from bench.target.cli import main

sys.exit(main())
