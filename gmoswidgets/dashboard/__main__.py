"""``python -m gmoswidgets.dashboard``: the same as ``make demo``."""
import sys

from .demo import main

sys.exit(main())
