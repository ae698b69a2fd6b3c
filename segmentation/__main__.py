"""``python -m segmentation``: see :mod:`segmentation.cli`."""

import sys

from segmentation.cli import main

sys.exit(main())
