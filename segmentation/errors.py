"""The one exception type for input a user handed us that we cannot use.

Kept in its own module so the app and the CLI can catch it without importing
TensorFlow (``segmentation.io`` and this module never import it).
"""

from __future__ import annotations


class ImageError(ValueError):
    """Bad input image: empty, not an image, damaged, too large or too small.

    The message says why in words a person understands; callers prefix the file name
    (``f"{path}: {exc}"``) because only they know how the image reached us.
    """
