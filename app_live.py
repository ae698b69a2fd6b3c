"""The app's Live camera tab: the browser's camera through streamlit-webrtc, live.

The browser sends its camera over WebRTC (aiortc on the server); every frame goes
through this session's :class:`~segmentation.live.LiveProcessor` and comes back with
the background replaced by the sidebar's choice. streamlit-webrtc's asynchronous
processing (``async_processing=True``) hands the callback only the newest frame that
arrived while the last one was processed and sends the last result meanwhile, so a
slow server drops frames rather than queueing them: the view never falls behind.

No ICE servers are configured by default: on one machine or one network the browser
and the server reach each other directly (and nothing is asked of a public STUN
service). Served further away, set ``NOBG_TURN_URL`` (one or more comma-separated
``turn:``/``turns:``/``stun:`` URLs), ``NOBG_TURN_USERNAME`` and
``NOBG_TURN_CREDENTIAL``; see the README.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from segmentation.live import LiveProcessor

#: The webrtc_streamer's key (its state lives under it in st.session_state).
LIVE_KEY = "live"
#: Where this session's processor is kept.
PROCESSOR_KEY = "live_processor"
#: What the browser is asked for: 640 x 480, the size the targets are measured at
#: (a camera that cannot gives its nearest); no sound, which would only echo.
MEDIA_CONSTRAINTS: dict[str, Any] = {
    "video": {"width": {"ideal": 640}, "height": {"ideal": 480}},
    "audio": False,
}
#: The browser's own view of the result: muted, no controls (START/STOP are below it).
VIDEO_ATTRS: dict[str, Any] = {
    "autoPlay": True,
    "controls": False,
    "muted": True,
    "style": {"width": "100%"},
}
#: Whether the last full run drew the snapshot button enabled.
SNAPSHOT_SHOWN_KEY = "live_snapshot_shown"
#: Seconds between readout refreshes while the stream plays.
READOUT_EVERY = 1.0


def import_webrtc() -> Any:
    """streamlit_webrtc, with its SRTP library loaded so TensorFlow cannot break it.

    pylibsrtp's binding carries a whole OpenSSL whose symbols are exported; loaded after
    TensorFlow (the Keras runtime: the tests' tiny model), they bind to TensorFlow's
    BoringSSL and ``srtp_init`` crashes the server (a segfault). RTLD_DEEPBIND makes the
    binding use its own copies first.
    """
    if "pylibsrtp" not in sys.modules and hasattr(os, "RTLD_DEEPBIND"):
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
        try:
            import pylibsrtp  # noqa: F401
        finally:
            sys.setdlopenflags(flags)
    import streamlit_webrtc

    return streamlit_webrtc


def rtc_configuration(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The RTCConfiguration for both ends: no ICE servers unless a TURN server is set.

    streamlit-webrtc would otherwise fetch public STUN servers by itself; an explicit
    empty list keeps the app off the internet and is all one machine or network needs.
    """
    env = os.environ if env is None else env
    urls = [u.strip() for u in env.get("NOBG_TURN_URL", "").split(",") if u.strip()]
    if not urls:
        return {"iceServers": []}
    server: dict[str, Any] = {"urls": urls}
    username = env.get("NOBG_TURN_USERNAME", "")
    credential = env.get("NOBG_TURN_CREDENTIAL", "")
    if username or credential:
        server["username"] = username
        server["credential"] = credential
    return {"iceServers": [server]}


def describe_stats(processor: LiveProcessor) -> str:
    """One line for the page: processed frames a second, processing time, frame size."""
    stats = processor.stats()
    if stats.frames == 0 or stats.size is None:
        return "Waiting for the first frame…"
    width, height = stats.size
    return (
        f"**{stats.fps:.1f}** processed frames/s · **{stats.processing_ms:.0f} ms** "
        f"processing a frame · {width} × {height} px"
    )


def live_processor(segmenter: Any, path: Path) -> LiveProcessor:
    """This session's processor (one per session and model, kept across reruns)."""
    held = st.session_state.get(PROCESSOR_KEY)
    if held is None or held[0] != str(path):
        held = (str(path), LiveProcessor(segmenter))
        st.session_state[PROCESSOR_KEY] = held
    return held[1]


def show_live(settings: Any, path: Path, load_segmenter: Callable[[str], Any]) -> None:
    """The Live camera tab: the stream, its readout and the snapshot button.

    ``settings`` is the sidebar's (refine, subject, background); ``load_segmenter``
    returns the server's shared model for a path.
    """
    st.caption(
        "Press **START** and allow the camera: each frame comes back with the sidebar's "
        "background (refinement, people to keep and background apply). Frames are "
        "processed on this server and not stored; when it falls behind, frames are "
        "skipped, never queued. The snapshot is the current frame at the camera's "
        "resolution, the person on transparency."
    )
    # Off until asked for: the WebRTC component (and aiortc) only for those who use it.
    if not st.toggle("Use the live camera", value=False, key="live_on"):
        st.info("Switch on the live camera, then press START.")
        return
    webrtc = import_webrtc()
    try:
        segmenter = load_segmenter(str(path))
    except Exception:
        st.error(f"The model at `{path}` could not be loaded; see the server log for details.")
        return
    processor = live_processor(segmenter, path)
    processor.configure(
        subject=settings.subject, refine=settings.refine, background=settings.background
    )
    context = webrtc.webrtc_streamer(
        key=LIVE_KEY,
        mode=webrtc.WebRtcMode.SENDRECV,
        rtc_configuration=rtc_configuration(),
        media_stream_constraints=MEDIA_CONSTRAINTS,
        video_frame_callback=processor.recv,
        on_video_ended=processor.close,
        async_processing=True,  # newest frame only: drop, never queue
        sendback_audio=False,
        video_html_attrs=VIDEO_ATTRS,
    )
    playing = bool(context.state.playing)
    # Outside the readout's fragment: a button redrawn every second could lose a click.
    has_frame = processor.snapshot() is not None
    st.session_state[SNAPSHOT_SHOWN_KEY] = has_frame
    st.download_button(
        "Snapshot (transparent PNG)",
        lambda: processor.snapshot_png() or b"",
        file_name="live-snapshot.png",
        mime="image/png",
        key="live-snapshot",
        disabled=not has_frame,
        type="primary",
        icon=":material/photo_camera:",
        on_click="ignore",
    )
    if playing:
        st.fragment(show_readout, run_every=READOUT_EVERY)(processor)


def show_readout(processor: LiveProcessor) -> None:
    """Frame rate and processing time, refreshed every second while the stream plays."""
    if processor.snapshot() is not None and not st.session_state.get(SNAPSHOT_SHOWN_KEY):
        st.rerun()  # the first frame is in: draw the snapshot button enabled
    with st.container(key="live-readout"):
        st.markdown(describe_stats(processor))
