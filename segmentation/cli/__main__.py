"""``python -m segmentation.cli`` still works: the same as ``python -m segmentation``."""

import sys

from segmentation.cli import main

sys.exit(main())
