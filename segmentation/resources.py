"""Where the shipped model is, in a checkout and in an installed copy; which one to use.

A checkout keeps the weights in ``weights/`` beside the package; ``pip install .`` puts
the same files inside the package, as ``segmentation/weights/`` (see pyproject.toml),
because an installed copy has no checkout around it. The installed location is looked
at first, so a wheel never picks up an unrelated ``weights/`` folder in site-packages.

``$SEGMENTATION_MODEL`` names other weights for every entry point (app, CLI, API,
batch); an explicit ``--model`` wins over it. Loading them is
:func:`segmentation.segmenter.load_segmenter`: this module only says where they are.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MODEL_ENV", "MODEL_NAME", "default_model_path", "model_path"]

#: Environment variable that names the weights when no path is given.
MODEL_ENV = "SEGMENTATION_MODEL"
#: File name of the shipped model (its .tflite sibling sits beside it).
MODEL_NAME = "person_unet.keras"

_PACKAGE = Path(__file__).resolve().parent


def default_model_path() -> Path:
    """The shipped model: inside an installed package, else in the checkout's weights/.

    When neither exists the checkout location is returned, so the error message names
    the place training exports to.
    """
    installed = _PACKAGE / "weights" / MODEL_NAME
    if installed.is_file():
        return installed
    return _PACKAGE.parent / "weights" / MODEL_NAME


def model_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The weights to load: ``explicit``, else ``$SEGMENTATION_MODEL``, else the shipped ones."""
    if explicit:
        return Path(explicit)
    override = os.environ.get(MODEL_ENV)
    return Path(override) if override else default_model_path()
