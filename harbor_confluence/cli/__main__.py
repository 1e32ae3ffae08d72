"""``python -m harbor_confluence.cli``."""

import sys

from . import main

sys.exit(main())
