"""segmentation.video: clips in every container we claim, out as WebM/MOV with alpha, MP4, mask.

Clips are generated here with PyAV, tiny (96x64, a few frames), so the whole module runs
in well under a minute. Where a test checks *which* pixels are transparent it uses a
stub segmenter with a known map (a person-shaped block in the middle), so the result
does not depend on any trained model.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from segmentation.video import (
    TemporalStabilizer,
    VideoError,
    VideoLimits,
    first_frame,
    masks,
    probe,
    remove_background,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "assets" / "example.png"
W, H = 96, 64


class BlockSegmenter:
    """A stand-in network: the middle of the frame is the person, the rest background."""

    input_size = 32

    def predict_probability(self, rgb: np.ndarray) -> np.ndarray:
        prob = np.zeros((32, 32), np.float32)
        prob[6:26, 10:22] = 1.0
        return prob


def scene(t: int, width: int = W, height: int = H) -> np.ndarray:
    """A frame: a gradient background, a dark 'person' block drifting right, a red mark."""
    x = np.linspace(90, 200, width, dtype=np.float32)
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = x[None, :, None].astype(np.uint8)
    frame[:, :, 2] = 160
    left = width // 3 + t
    frame[height // 5 : height * 4 // 5, left : left + width // 3] = (40, 50, 60)
    frame[:6, :6] = (255, 0, 0)  # top left: orientation marker
    return frame


def write_clip(
    path: Path,
    codec: str = "libx264",
    frames: int = 6,
    fps: int = 10,
    size: tuple[int, int] = (W, H),
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    audio: str | None = None,
    rotation: int | None = None,
    pictures: list[np.ndarray] | None = None,
    audio_seconds: float | None = None,
) -> Path:
    """Write a small clip; ``pts`` in 1/fps units gives a variable frame rate."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, fps)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = out.add_stream(audio, rate=48000) if audio else None
        for i in range(frames):
            picture = pictures[i] if pictures is not None else scene(i, width, height)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = pts[i] if pts is not None else i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if sound is not None:
            seconds = audio_seconds or (pts[-1] + 1 if pts else frames) / fps
            n = int(48000 * seconds)
            tone = (0.3 * np.sin(np.arange(n) * 2 * np.pi * 440 / 48000)).astype(np.float32)
            chunk = 960
            for start in range(0, n, chunk):
                samples = np.ascontiguousarray(tone[None, start : start + chunk])
                frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
                frame.sample_rate, frame.pts = 48000, start
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def decode(path: Path, fmt: str = "rgba", decoder: str | None = None) -> list[np.ndarray]:
    """Every frame of the first video stream; ``decoder`` picks one (libvpx for alpha)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if decoder is None:
            return [f.to_ndarray(format=fmt) for f in container.decode(stream)]
        codec = av.CodecContext.create(decoder, "r")
        frames = []
        for packet in container.demux(stream):
            frames += [f.to_ndarray(format=fmt) for f in codec.decode(packet)]
        return frames


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(f.pts * stream.time_base) for f in container.decode(stream)]


# --- inputs -----------------------------------------------------------------------------

INPUTS = {
    "mp4-h264": ("clip.mp4", "libx264", "yuv420p"),
    "mp4-h265": ("clip.mp4", "libx265", "yuv420p"),
    "mov-h264": ("clip.mov", "libx264", "yuv420p"),
    "webm-vp9": ("clip.webm", "libvpx-vp9", "yuv420p"),
    "webm-vp8": ("clip.webm", "libvpx", "yuv420p"),
    "mkv-h264": ("clip.mkv", "libx264", "yuv420p"),
    "avi-mpeg4": ("clip.avi", "mpeg4", "yuv420p"),
    "gif": ("clip.gif", "gif", "rgb8"),
}


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_each_input_container_and_codec(kind: str, tmp_path: Path, tiny_segmenter) -> None:
    name, codec, pix_fmt = INPUTS[kind]
    source = write_clip(tmp_path / name, codec, frames=5, pix_fmt=pix_fmt)
    info = probe(source)
    assert (info.width, info.height) == (W, H)
    out = remove_background(source, tmp_path / "out.mp4", tiny_segmenter, output="mask")
    assert out.frames == 5
    frames = decode(out.path, "gray")
    assert len(frames) == 5 and frames[0].shape == (H, W)
    assert len(frame_times(out.path)) == 5


def test_frame_count_rate_and_variable_timestamps_are_kept(tmp_path: Path) -> None:
    pts = [0, 1, 3, 4, 7, 8, 12]  # 1/10 s units: gaps of 0.1 to 0.4 s
    source = write_clip(tmp_path / "vfr.mkv", frames=len(pts), pts=pts)
    expected = frame_times(source)
    assert expected == pytest.approx([p / 10 for p in pts])
    for output, suffix in (("mp4", ".mp4"), ("webm", ".webm")):
        target = tmp_path / f"out{suffix}"
        result = remove_background(source, target, BlockSegmenter(), output=output)
        assert result.frames == len(pts)
        assert frame_times(target) == pytest.approx(expected, abs=0.002)


def test_constant_rate_and_duration_are_kept(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "in.mp4", frames=12, fps=24)
    result = remove_background(source, tmp_path / "out.webm", BlockSegmenter())
    info = probe(result.path)
    assert result.frames == 12
    assert info.fps == pytest.approx(24, rel=0.01)
    assert info.duration == pytest.approx(probe(source).duration, abs=0.05)


# --- outputs ----------------------------------------------------------------------------


def test_webm_has_a_real_alpha_plane(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "in.mp4")
    result = remove_background(source, tmp_path / "out.webm", BlockSegmenter())
    assert probe(result.path).codec == "vp9"
    frames = decode(result.path, "rgba", decoder="libvpx-vp9")  # FFmpeg's vp9 drops alpha
    assert len(frames) == 6
    for rgba in frames:
        alpha = rgba[:, :, 3]
        assert alpha[:8, :8].max() < 16 and alpha[-8:, -8:].max() < 16, "corners transparent"
        assert alpha[H // 2 - 4 : H // 2 + 4, W // 2 - 4 : W // 2 + 4].min() > 240, "opaque"


def test_prores_mov_has_a_real_alpha_plane(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "in.mp4", frames=3)
    result = remove_background(source, tmp_path / "out.mov", BlockSegmenter(), output="mov")
    with av.open(str(result.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "prores"
        assert "yuva444" in stream.codec_context.pix_fmt
    frames = decode(result.path, "rgba")
    assert len(frames) == 3
    alpha = frames[0][:, :, 3]
    assert alpha[:8, :8].max() < 8 and alpha[-8:, -8:].max() < 8
    assert alpha[H // 2 - 4 : H // 2 + 4, W // 2 - 4 : W // 2 + 4].min() > 247


def test_mp4_on_a_colour_keeps_the_person(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "in.mov", frames=3)
    target = tmp_path / "out.mp4"
    remove_background(source, target, BlockSegmenter(), output="mp4", background=(0, 200, 0))
    rgb = decode(target, "rgb24")[1]
    corner = rgb[8:14, 8:14].reshape(-1, 3).mean(axis=0)
    assert np.abs(corner - (0, 200, 0)).max() < 20, corner
    person = rgb[H // 2 - 3 : H // 2 + 3, W // 2 - 3 : W // 2 + 3].reshape(-1, 3).mean(axis=0)
    assert np.abs(person - (40, 50, 60)).max() < 20, person


def test_mp4_on_blur_and_on_an_image(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "in.mp4", frames=3)
    picture = np.zeros((30, 40, 3), np.uint8)
    picture[:] = (250, 10, 10)
    for name, background in (("blur", "blur"), ("image", picture)):
        target = tmp_path / f"{name}.mp4"
        remove_background(source, target, BlockSegmenter(), output="mp4", background=background)
        frames = decode(target, "rgb24")
        assert len(frames) == 3 and frames[0].shape == (H, W, 3)
    corner = decode(tmp_path / "image.mp4", "rgb24")[0][8:14, 8:14].reshape(-1, 3).mean(axis=0)
    assert np.abs(corner - (250, 10, 10)).max() < 25


def test_mask_output_is_white_on_the_person(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "in.mp4", frames=3)
    target = tmp_path / "mask.mp4"
    remove_background(source, target, BlockSegmenter(), output="mask")
    grey = decode(target, "gray")[0]
    assert grey[:8, :8].max() < 20 and grey[H // 2, W // 2] > 235


def test_rotation_metadata_gives_an_upright_result(tmp_path: Path) -> None:
    # A portrait phone clip: stored sideways (landscape) with 'rotate 90° clockwise'.
    upright = [scene(i, 64, 96) for i in range(3)]  # 64 wide, 96 tall, red mark top left
    stored = [np.ascontiguousarray(np.rot90(p, 1)) for p in upright]  # counter-clockwise
    source = write_clip(tmp_path / "phone.mov", size=(96, 64), frames=3, pictures=stored,
                        rotation=-90)  # fmt: skip
    info = probe(source)
    assert (info.width, info.height, info.rotation) == (64, 96, 90)
    assert first_frame(source).shape == (96, 64, 3)

    class Everything(BlockSegmenter):
        def predict_probability(self, rgb):
            return np.ones((32, 32), np.float32)

    target = tmp_path / "out.mp4"
    remove_background(source, target, Everything(), output="mp4", background="white")
    rgb = decode(target, "rgb24")[0]
    assert rgb.shape == (96, 64, 3)
    assert rgb[:4, :4, 0].mean() > 180 and rgb[:4, :4, 1].mean() < 80, "red mark top left"
    assert probe(target).rotation == 0


@pytest.mark.parametrize(("output", "suffix", "codec"), [("mp4", ".mp4", "aac"),
                                                         ("webm", ".webm", "opus")])  # fmt: skip
def test_audio_track_is_kept(output: str, suffix: str, codec: str, tmp_path: Path) -> None:
    source = write_clip(tmp_path / "talk.mp4", frames=10, audio="aac")
    assert probe(source).audio == "aac"
    target = tmp_path / f"out{suffix}"
    remove_background(source, target, BlockSegmenter(), output=output)
    with av.open(str(target)) as container:
        (audio,) = container.streams.audio
        assert audio.codec_context.name == codec
        samples = sum(f.samples for f in container.decode(audio))
    assert samples / 48000 == pytest.approx(1.0, abs=0.1)


# --- bad input ------------------------------------------------------------------------


def no_leftovers(folder: Path, expected: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == expected, "nothing half-written remains"


def test_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("a shopping list, not a video\n" * 20)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VideoError, match="not a video"):
        remove_background(text, out / "x.webm", BlockSegmenter())
    no_leftovers(out, set())
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        probe(tmp_path / "empty.mp4")


def test_a_photo_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="still image"):
        probe(EXAMPLE)


def test_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        sound = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="flt",
                                           layout="mono")  # fmt: skip
        frame.sample_rate, frame.pts = 48000, 0
        for packet in [*sound.encode(frame), *sound.encode()]:
            out.mux(packet)
    with pytest.raises(VideoError, match=r"no video stream.*only audio"):
        probe(path)


def test_truncated_clip_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "full.webm", "libvpx-vp9", frames=30)
    data = source.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VideoError, match=r"truncated.*\d+ frames"):
        remove_background(cut, out / "cut.webm", BlockSegmenter())
    no_leftovers(out, set())


def test_damaged_mp4_without_an_index(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "full.mp4", frames=10)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(source.read_bytes()[:-200])  # the index (moov) is at the end
    with pytest.raises(VideoError, match=r"damaged|truncated"):
        remove_background(cut, tmp_path / "x.mp4", BlockSegmenter(), output="mask")
    no_leftovers(tmp_path, {"full.mp4", "cut.mp4"})


def test_limits_are_configurable(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "in.mp4", frames=10)  # 1 s of 96x64
    with pytest.raises(VideoError, match=r"too long: 1\.0 s, the limit is 0\.5 s"):
        probe(source, VideoLimits(max_seconds=0.5))
    with pytest.raises(VideoError, match="too large: 96x64"):
        remove_background(source, tmp_path / "x.webm", BlockSegmenter(),
                          limits=VideoLimits(max_megapixels=0.005))  # fmt: skip
    assert probe(source, VideoLimits(max_seconds=2, max_megapixels=0.01)).frames == 10


def test_unsupported_codec(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "in.avi", "mpeg4", frames=3)
    data = source.read_bytes()
    assert data.count(b"FMP4") >= 2
    strange = tmp_path / "strange.avi"
    strange.write_bytes(data.replace(b"FMP4", b"QQQQ").replace(b"fmp4", b"qqqq"))
    with pytest.raises(VideoError, match="unsupported video codec"):
        probe(strange)


def test_a_cancelled_render_leaves_nothing(tmp_path: Path) -> None:
    from segmentation.video import VideoCancelled

    source = write_clip(tmp_path / "in.mp4", frames=12)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VideoCancelled):
        remove_background(source, out / "x.webm", BlockSegmenter(), cancel=lambda: True)
    no_leftovers(out, set())

    def fail(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt  # e.g. the app's session went away

    with pytest.raises(KeyboardInterrupt):
        remove_background(source, out / "x.webm", BlockSegmenter(), progress=fail)
    no_leftovers(out, set())


# --- steadiness -------------------------------------------------------------------------


def noisy_still(count: int, sigma: float, seed: int = 0) -> list[np.ndarray]:
    """The example photo as a still 'clip', fresh sensor noise on every frame."""
    from PIL import Image

    base = np.asarray(Image.open(EXAMPLE).convert("RGB").resize((128, 128)), np.float32)
    rng = np.random.default_rng(seed)
    return [
        np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)
        for _ in range(count)
    ]


def mean_change(sequence: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b.astype(int) - a.astype(int)).mean()
                          for a, b in itertools.pairwise(sequence)]))  # fmt: skip


def test_a_still_scene_gives_a_still_mask(tiny_segmenter) -> None:
    frames = noisy_still(16, sigma=4.0)
    plain = list(masks(frames, tiny_segmenter, stabilize=False))
    steady = list(masks(frames, tiny_segmenter, stabilize=True))
    assert len(plain) == len(steady) == 16
    assert mean_change(plain) > 0.2, "the noise does make a per-frame mask move"
    settled = steady[3:]
    assert mean_change(settled) < mean_change(plain) / 10
    moved = [np.count_nonzero(b != a) / a.size for a, b in itertools.pairwise(settled)]
    assert max(moved) < 0.002, "all but a few edge pixels stay exactly still"


def test_a_one_frame_blink_is_removed_and_motion_followed() -> None:
    stabilizer = TemporalStabilizer()
    maps = [np.zeros((8, 8), np.float32) for _ in range(6)]
    maps[2][2:4, 2:4] = 1.0  # a blob for one frame only
    for t in range(6):
        maps[t][6:, :] = 1.0 if t >= 3 else 0.0  # a real change that stays
    out = []
    for t, prob in enumerate(maps):
        out += stabilizer.push_map(t, prob)
    out += stabilizer.flush()
    assert [t for t, _ in out] == list(range(6))
    steady = [m for _, m in out]
    assert max(m[2:4, 2:4].max() for m in steady) == 0.0, "the blink never shows"
    assert steady[3][6:].min() == 1.0, "a large change is followed at once"


def test_hold_keeps_small_changes_out() -> None:
    stabilizer = TemporalStabilizer(dead_band=6)
    first = np.full((4, 4), 100, np.uint8)
    assert (stabilizer.hold(first) == 100).all()
    nudged = first.copy()
    nudged[0, 0], nudged[1, 1] = 104, 120
    held = stabilizer.hold(nudged)
    assert held[0, 0] == 100 and held[1, 1] == 120


# --- command line -----------------------------------------------------------------------


def test_cli_one_bad_clip_among_good_ones(tmp_path: Path, tiny_model_path, capsys) -> None:
    from segmentation.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    write_clip(folder / "a.mp4", frames=4)
    write_clip(folder / "b.webm", "libvpx-vp9", frames=4)
    (folder / "broken.mov").write_text("not a video at all\n" * 10)
    out = tmp_path / "out"
    code = main(["video", str(folder), "-o", str(out), "--model", str(tiny_model_path)])
    stderr = capsys.readouterr().err
    assert code == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.mov: not a video" in errors[0], stderr
    assert "2 written" in stderr and "1 failed" in stderr
    assert "frame" in stderr, "a progress bar in frames"
    assert sorted(p.name for p in out.iterdir()) == ["a.webm", "b.webm"]
    rgba = decode(out / "a.webm", "rgba", decoder="libvpx-vp9")
    assert len(rgba) == 4 and rgba[0].shape == (H, W, 4)


def test_cli_formats_and_argument_errors(
    tmp_path: Path, tiny_model_path, tiny_segmenter, monkeypatch, capsys
) -> None:
    import segmentation.segmenter
    from segmentation.cli import main

    source = write_clip(tmp_path / "clip.mov", frames=3)
    out = tmp_path / "out"
    assert main(["video", str(source), "-o", str(out), "--model", "nope.keras"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "model file not found" in errors[0], errors

    # The test above loads the model for real; here each run reuses the session's.
    monkeypatch.setattr(segmentation.segmenter, "Segmenter", lambda path: tiny_segmenter)
    model = ["--model", str(tiny_model_path)]
    assert main(["video", str(source), "-o", str(out), "--background", "blur", *model]) == 0
    assert main(["video", str(source), "-o", str(out), "--format", "mask", *model]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"]  # mask replaced the mp4
    assert decode(out / "clip.mp4", "gray")[0].shape == (H, W)
    with pytest.raises(SystemExit) as exit_info:
        main(["video", str(source), "-o", str(out), "--format", "webm", "--background", "red"])
    assert exit_info.value.code == 2
    assert "--background needs --format mp4" in capsys.readouterr().err
    assert main(["video", str(tmp_path / "missing.mp4"), "-o", str(out), *model]) == 1


def test_a_longer_audio_track_is_not_mistaken_for_truncation(tmp_path: Path) -> None:
    # 0.5 s of picture, 1 s of sound: the WebM header's duration is the sound's.
    source = write_clip(
        tmp_path / "in.webm", "libvpx-vp9", frames=5, audio="libopus", audio_seconds=1.5
    )
    assert probe(source).duration > 1.2
    result = remove_background(source, tmp_path / "out.webm", BlockSegmenter())
    assert result.frames == 5
