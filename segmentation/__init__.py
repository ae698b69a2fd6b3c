"""Person segmentation: photo in, soft mask and transparent cutout out, at full resolution."""

from segmentation.model import build_unet

__all__ = ["build_unet"]
