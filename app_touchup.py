"""The photo card's "Touch up" tab: a Remove / Keep brush over the preview.

UI only, beside app.py (which had no room left): the strokes come from
streamlit-drawable-canvas as an RGBA drawing, app_support turns them into hint layers,
and segmentation's touch-up fixes the whole region each dab is on. Per stroke only the
preview is touched up (fast); the full-resolution result is made once per set of
strokes, when a download is clicked, and cached.
"""

from __future__ import annotations

import cv2
import numpy as np
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from app_support import BRUSHES, Hints, canvas_size, touched_up
from segmentation import SegmentationResult


@st.cache_resource(max_entries=32, ttl=3600, show_spinner=False)
def preview_touched(
    digest: str,
    refine: bool,
    subject: str,
    path: str,
    hints: str,
    _small: np.ndarray,
    _small_mask: np.ndarray,
    _strokes: Hints,
) -> np.ndarray:
    """The preview's mask after the touch-up strokes: redone per stroke, so on the preview."""
    return touched_up(SegmentationResult(_small, _small_mask), *_strokes).mask


@st.cache_resource(max_entries=4, ttl=3600, show_spinner=False)
def touched_prediction(
    digest: str,
    refine: bool,
    subject: str,
    path: str,
    hints: str,
    _prediction: SegmentationResult,
    _strokes: Hints,
) -> SegmentationResult:
    """The full-resolution result after the strokes, once for all of a photo's downloads."""
    return touched_up(_prediction, *_strokes)


def show_touch_up(
    key: str,
    canvas_key: str,
    preview: SegmentationResult,
    result_view: np.ndarray,
    overlay_colour: tuple[int, int, int],
    opacity: float,
) -> None:
    """The brush: strokes on the overlay (left), the result they give (right).

    One dab is enough for a whole wrong region (segmentation.touchup); the canvas's own
    toolbar undoes a stroke, Reset clears them all.
    """
    controls = st.columns([2, 3, 1], vertical_alignment="bottom")
    brush = controls[0].radio("Brush", list(BRUSHES), horizontal=True, key=f"touchup-brush-{key}")
    size = controls[1].slider("Brush size", 4, 80, 24, key=f"touchup-size-{key}")
    controls[2].button(
        "Reset",
        key=f"touchup-clear-{key}",
        icon=":material/restart_alt:",
        on_click=_reset_touch_up,
        args=(key,),
    )
    st.caption(
        "Dab on a wrong region: **Remove** drops it, **Keep** brings it back; "
        "the result and the downloads follow."
    )
    height, width = canvas_size(*preview.original.shape[:2])
    overlay = preview.overlay(overlay_colour, opacity)
    background = cv2.resize(overlay, (width, height), interpolation=cv2.INTER_AREA)
    left, right = st.columns(2)
    with left:
        st_canvas(
            stroke_width=size,
            stroke_color=BRUSHES[brush],
            background_image=Image.fromarray(background),
            height=height,
            width=width,
            drawing_mode="freedraw",
            return_image_data=True,
            key=canvas_key,
        )
    right.image(result_view, caption="Touched up")


def _reset_touch_up(key: str) -> None:
    """Clear a card's strokes: its canvas gets a new key, so it starts empty."""
    counter = f"touchup-reset-{key}"
    st.session_state[counter] = st.session_state.get(counter, 0) + 1
