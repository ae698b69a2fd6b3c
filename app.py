"""Streamlit app: remove the background from photos and videos of people.

UI only. Decoding, the network and compositing live in ``segmentation``; naming,
previews, exports and ZIPs in ``app_support``. Run with ``make app``.

Three caches keep the page responsive:
- the model loads once per server (st.cache_resource);
- each photo goes through the network once per (content hash, refine, subject), kept with
  st.cache_resource rather than st.cache_data because unpickling a 12 MP result (84 MB)
  on every rerun would cost more than the controls that trigger the rerun;
- downloads are encoded only when clicked (deferred download buttons), then cached per
  photo and setting: a 12 MP transparent PNG takes seconds to encode, and no one wants
  to wait for files they may never download before seeing the result.
Display controls (overlay colour, opacity, edges, background) only touch downscaled
previews.

A video (second tab) shows its first frame's result at once, then renders the whole
clip in this session's script thread with a progress bar (other sessions are served
meanwhile: a render runs the network on its own one-thread interpreter, and the shared
Keras model, when there is no .tflite, is locked one frame at a time). The rendered file is kept
in the session's state, so reruns do not render again; a session that goes away stops
its render, because the progress bar's next update raises Streamlit's stop exception
and segmentation.video then stops its threads and deletes the unfinished file.

The live camera (third tab, app_live.py) streams the browser's camera through
streamlit-webrtc; each session's frames go through its own segmentation.live processor.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from app_live import show_live
from app_support import (
    APP_VIDEO_MAX_MEGAPIXELS,
    APP_VIDEO_MAX_SECONDS,
    EXPORTS,
    UPLOAD_TYPES,
    VIDEO_EXPORTS,
    VIDEO_UPLOAD_TYPES,
    PhotoOutcome,
    build_zip,
    describe_clip,
    describe_progress,
    describe_size,
    describe_timings,
    export_file,
    file_digest,
    final_mask,
    fit_preview,
    output_name,
    over_checkerboard,
    process_photo,
    safe_stem,
)
from segmentation import (
    DEFAULT_MODEL_PATH,
    ImageError,
    SegmentationResult,
    Segmenter,
    load_image,
)
from segmentation.compose import DEFAULT_OVERLAY_COLOR, parse_color
from segmentation.video import (
    VideoError,
    VideoLimits,
    first_frame,
    masks,
    probe,
    remove_background,
)

EXAMPLE_PATH = Path(__file__).resolve().parent / "assets" / "example.png"
EXAMPLE_CREDIT = "Eileen Collins, NASA (public domain)"
BACKGROUNDS = ("Transparent", "Colour", "Blurred original", "Image")
#: The sidebar's "People to keep" labels and the ``subject`` each stands for.
SUBJECT_CHOICES = {"The main subject": "main", "Everyone": "all"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """The sidebar's choices for one script run."""

    refine: bool
    subject: str  # 'main' or 'all' (segmentation.subject)
    edges: tuple[bool, float, float]  # (hard edges, threshold, softness in px)
    background: Any  # None = transparent, else anything compose.composite takes
    background_key: str  # hashable stand-in for ``background`` in cache keys
    overlay_colour: tuple[int, int, int]
    opacity: float


def model_path() -> Path:
    """The weights to serve: $SEGMENTATION_MODEL (tests use a tiny model) or the default."""
    return Path(os.environ.get("SEGMENTATION_MODEL") or DEFAULT_MODEL_PATH)


@st.cache_resource(show_spinner="Loading the model…")
def get_segmenter(path: str) -> Segmenter:
    """One model per server process and weights file, shared by every session."""
    return Segmenter(path)


@st.cache_resource(max_entries=8, ttl=3600, show_spinner=False)
def predict(digest: str, _data: bytes, refine: bool, subject: str, path: str) -> SegmentationResult:
    """Network + refinement for one photo; the content hash stands in for the bytes.

    The result is shared, not copied: nothing in this app modifies it.
    """
    return get_segmenter(path).predict(_data, refine=refine, subject=subject)


@st.cache_resource(max_entries=32, ttl=3600, show_spinner=False)
def preview_base(
    digest: str, refine: bool, subject: str, path: str, _prediction: SegmentationResult
) -> tuple[np.ndarray, np.ndarray]:
    """The photo and its mask shrunk for the page, once per photo rather than per rerun."""
    return fit_preview(_prediction.original), fit_preview(_prediction.mask)


@st.cache_data(max_entries=24, ttl=3600, show_spinner=False)
def export(
    kind: str,
    digest: str,
    refine: bool,
    subject: str,
    path: str,
    edges: tuple[bool, float, float],
    background_key: str,
    _prediction: SegmentationResult,
    _background: Any,
) -> bytes:
    """One download file at full resolution, keyed by everything that changes it."""
    mask = final_mask(_prediction.mask, *edges)
    return export_file(kind, _prediction.original, mask, _background)


@st.cache_data(max_entries=4, show_spinner=False)
def load_background(digest: str, _data: bytes) -> np.ndarray:
    """Decode an uploaded background image once."""
    return load_image(_data)


def sidebar() -> Settings:
    """All settings, in the sidebar so the results keep the page width."""
    sb = st.sidebar
    sb.header("Settings")
    refine = sb.toggle(
        "Full-resolution edge refinement",
        value=True,
        key="refine",
        help="Makes the mask follow hair and clothing at the photo's own resolution. "
        "Off is a little faster; the mask is then only upscaled from the network's output.",
    )
    subject = SUBJECT_CHOICES[
        sb.radio(
            "People to keep",
            list(SUBJECT_CHOICES),
            index=0,
            key="subject",
            help="The main subject drops passers-by, an audience and people cut off behind "
            "the person or group the picture is of. Everyone keeps every person.",
        )
    ]
    sb.subheader("Edges")
    hard_edges = sb.toggle(
        "Hard edges",
        value=False,
        key="hard_edges",
        help="Cut at a threshold instead of keeping the soft edge.",
    )
    threshold = 0.5
    if hard_edges:
        threshold = sb.slider(
            "Threshold", 0.05, 0.95, 0.5, 0.05, key="threshold", help="Higher keeps less."
        )
    softness = sb.slider(
        "Edge softness (px)",
        0,
        20,
        0,
        key="softness",
        help="Feathers the edge of the mask over about twice this many pixels.",
    )

    sb.subheader("Background")
    choice = sb.radio("Replace the background with", BACKGROUNDS, index=0, key="background")
    background: Any = None
    background_key = "transparent"
    if choice == "Colour":
        colour = sb.color_picker("Colour", "#FFFFFF", key="bg_colour")
        background, background_key = parse_color(colour), f"colour:{colour}"
    elif choice == "Blurred original":
        background, background_key = "blur", "blur"
    elif choice == "Image":
        upload = sb.file_uploader("Background image", type=list(UPLOAD_TYPES), key="bg_upload")
        if upload is not None:
            data = upload.getvalue()
            digest = file_digest(data)
            try:
                background, background_key = load_background(digest, data), f"image:{digest}"
            except ImageError as exc:
                sb.error(f"{upload.name}: {exc}. The background stays transparent.")
        else:
            sb.info("Upload a background image; until then the background is transparent.")

    sb.subheader("Mask overlay")
    overlay_colour = sb.color_picker(
        "Overlay colour", "#{:02X}{:02X}{:02X}".format(*DEFAULT_OVERLAY_COLOR), key="overlay_colour"
    )
    opacity = sb.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="opacity")
    return Settings(
        refine=refine,
        subject=subject,
        edges=(hard_edges, float(threshold), float(softness)),
        background=background,
        background_key=background_key,
        overlay_colour=parse_color(overlay_colour),
        opacity=float(opacity),
    )


def gather_sources() -> list[tuple[str, bytes]]:
    """The photos to process as (name, bytes): uploads, a camera shot, or the example."""
    limit_mb = st.get_option("server.maxUploadSize")
    uploads = st.file_uploader(
        "Photos of people",
        type=list(UPLOAD_TYPES),
        accept_multiple_files=True,
        key="photos",
        help="Several photos at once are fine; you get one ZIP with all results.",
    )
    st.caption(
        f"Up to {limit_mb} MB per file · JPEG, PNG, WebP, HEIC/HEIF, AVIF, TIFF, BMP or GIF "
        "· photos are processed on this server and not stored."
    )
    sources = [(f.name, f.getvalue()) for f in uploads or []]
    if st.toggle("Use the camera", value=False, key="camera_on"):
        shot = st.camera_input("Take a photo", key="camera")
        if shot is not None:
            sources.append(("camera.jpg", shot.getvalue()))
    if not sources and st.toggle("Try an example", value=True, key="example"):
        st.caption(f"Example photo: {EXAMPLE_CREDIT}. Upload your own above.")
        sources.append((EXAMPLE_PATH.name, EXAMPLE_PATH.read_bytes()))
    return sources


def run_batch(
    sources: list[tuple[str, bytes]], refine: bool, subject: str, path: str
) -> list[PhotoOutcome]:
    """Process every photo, with a progress bar for batches; failures become outcomes."""

    def run_one(digest: str, data: bytes) -> SegmentationResult:
        return predict(digest, data, refine, subject, path)

    if len(sources) == 1:
        name, data = sources[0]
        with st.spinner(f"Removing the background from {name}…"):
            return [process_photo(name, data, run_one)]
    progress = st.progress(0.0, text=f"Processing {len(sources)} photos…")
    outcomes = []
    for i, (name, data) in enumerate(sources):
        progress.progress(i / len(sources), text=f"Processing {name} ({i + 1} of {len(sources)})…")
        outcomes.append(process_photo(name, data, run_one))
    progress.progress(1.0, text=f"Processed {len(sources)} photos.")
    return outcomes


def file_maker(
    kind: str, outcome: PhotoOutcome, settings: Settings, path: str
) -> Callable[[], bytes]:
    """A callable that encodes one download when it is clicked (Streamlit runs it then)."""
    prediction = outcome.prediction
    assert prediction is not None

    def make() -> bytes:
        try:
            return export(
                kind,
                outcome.digest,
                settings.refine,
                settings.subject,
                path,
                settings.edges,
                settings.background_key,
                prediction,
                settings.background,
            )
        except Exception:
            log.exception("encoding %s for %s failed", kind, outcome.name)
            raise

    return make


def zip_maker(outcomes: list[PhotoOutcome], settings: Settings, path: str) -> Callable[[], bytes]:
    """A callable that builds the ZIP of every result when it is clicked."""

    def make() -> bytes:
        return build_zip(
            (output_name(o.name, kind, ext), file_maker(kind, o, settings, path)())
            for o in outcomes
            for kind, (ext, _mime, _label) in EXPORTS.items()
        )

    return make


def show_photo(index: int, outcome: PhotoOutcome, settings: Settings, path: str) -> None:
    """One card: size and time, previews in tabs, then the downloads."""
    prediction = outcome.prediction
    assert prediction is not None
    original = prediction.original

    with st.container(border=True, key=f"photo-{index}"):
        st.subheader(outcome.name)
        st.caption(
            f"{describe_size(original)} · processed in {describe_timings(prediction.timings)}"
        )

        # Previews are computed on a downscaled copy: cheap enough for every rerun.
        small, small_mask = preview_base(
            outcome.digest, settings.refine, settings.subject, path, prediction
        )
        hard, threshold, softness = settings.edges
        softness *= small.shape[1] / original.shape[1]
        preview = SegmentationResult(small, final_mask(small_mask, hard, threshold, softness))
        if settings.background is None:
            result_view = over_checkerboard(preview.cutout())
        else:
            result_view = preview.composite(settings.background)

        tab_result, tab_mask = st.tabs(["Before and after", "Mask and overlay"])
        with tab_result:
            left, right = st.columns(2)
            left.image(small, caption="Original")
            right.image(result_view, caption="Background removed")
        with tab_mask:
            left, right = st.columns(2)
            left.image(preview.alpha, caption="Mask")
            right.image(
                preview.overlay(settings.overlay_colour, settings.opacity),
                caption="Mask over the photo",
            )

        key = f"{index}-{outcome.digest[:16]}"
        for column, (kind, (ext, mime, label)) in zip(
            st.columns(len(EXPORTS)), EXPORTS.items(), strict=True
        ):
            if kind == "background" and settings.background is None:
                label = "JPEG on white"
            column.download_button(
                label,
                file_maker(kind, outcome, settings, path),
                file_name=output_name(outcome.name, kind, ext),
                mime=mime,
                key=f"{kind}-{key}",
                type="primary" if kind == "nobg" else "secondary",
                icon=":material/download:",
                on_click="ignore",
            )


def show_photos(settings: Settings, path: Path) -> None:
    """The photo tab: inputs, then one card per photo."""
    sources = gather_sources()
    if not sources:
        st.info("Upload a photo, take one with the camera, or switch on the example.")
        return

    if not segmenter_ready(path):
        return
    outcomes = run_batch(sources, settings.refine, settings.subject, str(path))
    for outcome in outcomes:
        if outcome.error:
            st.error(outcome.error, icon=":material/error:")

    good = [o for o in outcomes if o.ok]
    if len(good) > 1:
        st.download_button(
            f"Download all {len(good)} results (ZIP)",
            zip_maker(good, settings, str(path)),
            file_name="background-removed.zip",
            mime="application/zip",
            key="zip-all",
            type="primary",
            icon=":material/folder_zip:",
            on_click="ignore",
        )
    for index, outcome in enumerate(good):
        try:
            show_photo(index, outcome, settings, str(path))
        except Exception:
            # Never a traceback on the page; the details go to the server log.
            log.exception("showing %s failed", outcome.name)
            st.error(f"{outcome.name}: the result could not be shown (see the server log).")


def segmenter_ready(path: Path) -> bool:
    """Load the shared model; on failure say so on the page (details in the log)."""
    try:
        get_segmenter(str(path))
    except Exception:
        log.exception("loading the model %s failed", path)
        st.error(f"The model at `{path}` could not be loaded; see the server log for details.")
        return False
    return True


#: Behind the player, so a transparent WebM shows where it is transparent.
CHECKERBOARD_CSS = """<style>
.st-key-video-result video {
  background: repeating-conic-gradient(#c8c8c8 0% 25%, #ebebeb 0% 50%) 0 0 / 24px 24px;
}
</style>"""

VIDEO_LIMITS = VideoLimits(
    max_seconds=APP_VIDEO_MAX_SECONDS, max_megapixels=APP_VIDEO_MAX_MEGAPIXELS
)
#: The app renders clips with a closer look (the photos' first crop; its first-frame
#: preview shows it): sharper and steadier on people who fill part of the frame, ~5 % slower.
APP_VIDEO_ZOOM = True


def show_video(settings: Settings, path: Path) -> None:
    """The video tab: upload, first frame at once, the whole clip with progress, player."""
    limit_mb = st.get_option("server.maxUploadSize")
    upload = st.file_uploader(
        "A video of a person",
        type=list(VIDEO_UPLOAD_TYPES),
        key="video",
        help="The result is a transparent WebM when the background (sidebar) is transparent, "
        "else an MP4 on that background. Frame rate, size, duration and sound are kept.",
    )
    st.caption(
        f"Up to {limit_mb} MB, {APP_VIDEO_MAX_SECONDS:.0f} s and 1920 × 1080 px per clip "
        "· MP4, MOV or WebM · processed on this server and not stored. The sidebar's "
        "refinement, people to keep and background apply to videos; the edge and overlay "
        "controls to photos."
    )
    if upload is None:
        st.info("Upload a clip: its first frame shows at once, then the whole clip renders.")
        return
    if not segmenter_ready(path):
        return
    data = upload.getvalue()
    output = "webm" if settings.background is None else "mp4"
    ext, mime, label = VIDEO_EXPORTS[output]
    key = (file_digest(data), output, settings.background_key, settings.refine, settings.subject)
    segmenter = get_segmenter(str(path))
    suffix = Path(upload.name).suffix.lower() or ".mp4"
    with tempfile.TemporaryDirectory(prefix="nobg-video-") as tmp:
        source = Path(tmp) / f"input{suffix}"
        source.write_bytes(data)
        try:
            info = probe(source, VIDEO_LIMITS)
            first = first_frame(source, VIDEO_LIMITS)
        except VideoError as exc:
            st.error(f"{upload.name}: {exc}", icon=":material/error:")
            return
        st.caption(describe_clip(info))
        show_first_frame(first, segmenter, settings)
        done = st.session_state.get("video_render")
        if done is None or done[0] != key:
            rendered = render_clip(source, Path(tmp) / f"result.{ext}", segmenter, settings,
                                   output, upload.name)  # fmt: skip
            if rendered is None:
                return
            done = (key, rendered)
            st.session_state["video_render"] = done
    left, right = st.columns(2)
    left.caption(
        "The whole clip, background removed (a checkerboard shows where it is transparent):"
    )
    with right.container(key="video-result"):
        st.markdown(CHECKERBOARD_CSS, unsafe_allow_html=True)
        st.video(done[1], format=mime, loop=True)
    left.download_button(
        label,
        done[1],
        file_name=f"{safe_stem(upload.name)}-nobg.{ext}",
        mime=mime,
        key="video-download",
        type="primary",
        icon=":material/download:",
        on_click="ignore",
    )


def show_first_frame(first: np.ndarray, segmenter: Segmenter, settings: Settings) -> None:
    """The clip's first frame as the render draws frames, before the whole clip renders."""
    small = fit_preview(first, 800)
    # The video path: no mirrored look, and one closer crop where a photo gets two.
    alpha = next(
        masks(
            [small],
            segmenter,
            stabilize=False,
            refine=settings.refine,
            zoom=APP_VIDEO_ZOOM,
            subject=settings.subject,
        )
    )
    result = SegmentationResult(small, alpha.astype(np.float32) / 255)
    if settings.background is None:
        view = over_checkerboard(result.cutout())
    else:
        view = result.composite(settings.background)
    left, right = st.columns(2)
    left.image(small, caption="First frame")
    right.image(view, caption="First frame, background removed")


def render_clip(
    source: Path,
    target: Path,
    segmenter: Segmenter,
    settings: Settings,
    output: str,
    name: str,
) -> bytes | None:
    """Render with a progress bar; the file's bytes, or None after showing the error."""
    bar = st.progress(0.0, text="Rendering the clip…")
    start = time.monotonic()
    shown = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - shown[0] >= 0.25 or done >= total:  # each update is a message to the page
            shown[0] = now
            bar.progress(
                min(1.0, done / max(total, 1)), text=describe_progress(done, total, now - start)
            )

    try:
        result = remove_background(
            source,
            target,
            segmenter,
            output=output,  # type: ignore[arg-type]
            background=settings.background,
            refine=settings.refine,
            zoom=APP_VIDEO_ZOOM,
            subject=settings.subject,
            limits=VIDEO_LIMITS,
            progress=progress,
        )
    except VideoError as exc:
        bar.empty()
        st.error(f"{name}: {exc}", icon=":material/error:")
        return None
    except Exception:
        bar.empty()
        log.exception("rendering %s failed", name)
        st.error(f"{name}: the clip could not be rendered (see the server log).")
        return None
    bar.progress(1.0, text=f"Rendered {result.frames} frames in {result.seconds:.1f} s "
                           f"({result.fps:.1f} frames/s).")  # fmt: skip
    return target.read_bytes()


def main() -> None:
    """Lay out the page: settings, then the photo, video and live camera tabs."""
    st.set_page_config(page_title="Background remover", page_icon="✂️", layout="wide")
    st.title("Background remover for photos and videos of people")
    st.write(
        "Upload photos of people and get a transparent PNG at the photo's full resolution, "
        "the mask, or the person on a new background; or a video, and get a transparent "
        "WebM or an MP4 on a new background. Nothing leaves this server."
    )

    path = model_path()
    if not path.is_file():
        st.error(
            f"No model weights at `{path}`. Train them (see the README) or set "
            "`SEGMENTATION_MODEL` to a saved `.keras` model."
        )
        st.stop()

    settings = sidebar()
    photos_tab, video_tab, live_tab = st.tabs(["Photos", "Video", "Live camera"])
    with photos_tab:
        show_photos(settings, path)
    with video_tab:
        show_video(settings, path)
    with live_tab:
        show_live(settings, path, get_segmenter)


main()
