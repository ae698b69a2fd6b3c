"""The person a photo is of: keep the main subject (or group), drop passers-by and crowds.

The network marks every person. Users cutting out a portrait, a street photo or a
dancer want the people the picture is of, so by default (``subject="main"``) the map
keeps only the confident person regions that are nearly as large as the largest one
(a group photo's members, a couple, a child on a lap) and what lies just around them
(hair, hands, a held bag), and drops smaller people elsewhere (an audience, people far
behind). ``subject="all"`` keeps the map as the network made it.

A rule on regions, measured on model v10's maps (closer and mirrored looks, IoU at
the map's size): dance-twirl 0.579 -> 0.688, breakdance 0.162 -> 0.178, parkour
0.915 -> 0.917, portraits 0.927 -> 0.928, VITON unchanged. A bystander who touches
the subject in the map stays: only a trained main-subject output can part them.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

__all__ = ["SUBJECTS", "Subject", "main_subject_probability", "select_subject"]

Subject = Literal["main", "all"]
#: The choices of every ``subject`` option (Python, CLI, API, app), default first.
SUBJECTS: tuple[Subject, ...] = ("main", "all")

#: Probability a region must reach to count as a person's confident core.
CORE_THRESHOLD = 0.7
#: A core is one of the main people when its area is at least this share of the largest.
KEEP_SHARE = 0.35
#: How far (times the square root of the kept cores' area) the map is kept around them.
REACH = 0.1
#: Cores smaller than this share of the map are noise, not people.
MIN_CORE_SHARE = 1e-4


def check_subject(subject: str) -> Subject:
    """``subject`` itself, or a ValueError that names the choices."""
    if subject not in SUBJECTS:
        raise ValueError(f"subject must be one of {', '.join(SUBJECTS)}, got {subject!r}")
    return subject  # type: ignore[return-value]


def main_subject_probability(probability: np.ndarray) -> np.ndarray:
    """The person map with everyone but the main subject (or group) faded out.

    ``probability`` is an (H, W) float map in [0, 1]; the result has its shape and
    dtype and is never higher than it anywhere.
    """
    core = (probability >= CORE_THRESHOLD).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if count <= 2:  # nobody, or one person: nothing to choose between
        return probability
    largest = int(areas.max())
    if largest < MIN_CORE_SHARE * probability.size:
        return probability
    keep = np.flatnonzero(areas >= KEEP_SHARE * largest) + 1
    kept = np.isin(labels, keep).astype(np.uint8)
    radius = max(3, round(REACH * float(np.sqrt(kept.sum()))))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    near = cv2.dilate(kept, disc).astype(np.float32)
    # A soft edge where the kept zone ends, so a cut through a faint region is no seam.
    near = np.clip(cv2.GaussianBlur(near, (0, 0), max(1.0, radius / 4)) * 1.5, 0.0, 1.0)
    return (probability * near).astype(probability.dtype, copy=False)


def select_subject(probability: np.ndarray, subject: Subject) -> np.ndarray:
    """The map for ``subject``: :func:`main_subject_probability` or the map itself."""
    if check_subject(subject) == "all":
        return probability
    return main_subject_probability(probability)
