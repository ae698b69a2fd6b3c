"""load_image decodes every format a person may upload, and refuses bad input clearly."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageFile

from segmentation.errors import ImageError
from segmentation.io import as_rgb, encode_jpeg, encode_png, load_image

RED, BLUE, WHITE = (230, 30, 30), (30, 30, 230), (255, 255, 255)


def pattern(width: int = 48, height: int = 32) -> np.ndarray:
    """Left half red, right half blue: orientation and channel order both show."""
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[:, : width // 2] = RED
    rgb[:, width // 2 :] = BLUE
    return rgb


def save(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def assert_pattern(rgb: np.ndarray, tolerance: int, width: int = 48, height: int = 32) -> None:
    assert rgb.shape == (height, width, 3)
    assert rgb.dtype == np.uint8
    assert rgb.flags.c_contiguous
    # Compare away from the colour boundary (lossy codecs blur it).
    left = rgb[4:-4, 4 : width // 2 - 4].reshape(-1, 3).mean(axis=0)
    right = rgb[4:-4, width // 2 + 4 : -4].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(left, RED, atol=tolerance)
    np.testing.assert_allclose(right, BLUE, atol=tolerance)


def _png_16bit_rgb() -> bytes:
    bgr16 = cv2.cvtColor(pattern(), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    ok, buf = cv2.imencode(".png", bgr16)
    assert ok
    return buf.tobytes()


def _palette(transparency: bool) -> bytes:
    image = Image.fromarray(pattern()).quantize(4)
    if transparency:
        return save(image, "PNG", transparency=255)  # an unused index: all opaque
    return save(image, "PNG")


def _heic() -> bytes:
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(pattern())).save(buf, format="HEIF", quality=95)
    return buf.getvalue()


def _animated_gif() -> bytes:
    first = Image.fromarray(pattern())
    second = Image.fromarray(np.full((32, 48, 3), 128, np.uint8))
    return save(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def _tiff_rgb16() -> bytes:
    bgr16 = cv2.cvtColor(pattern(), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    ok, buf = cv2.imencode(".tiff", bgr16)
    assert ok
    return buf.tobytes()


def _mpo() -> bytes:
    """A camera's multi-picture JPEG: the first picture is the photo."""
    grey = Image.fromarray(np.full((32, 48, 3), 128, np.uint8))
    return save(Image.fromarray(pattern()), "MPO", save_all=True, append_images=[grey])


def _cmyk_jpeg() -> bytes:
    return save(Image.fromarray(pattern()).convert("CMYK"), "JPEG", quality=95)


FORMATS = {
    "jpeg": (lambda: save(Image.fromarray(pattern()), "JPEG", quality=95), ".jpg", 12),
    "png_rgb8": (lambda: save(Image.fromarray(pattern()), "PNG"), ".png", 0),
    "png_rgb16": (_png_16bit_rgb, ".png", 0),
    "png_palette": (lambda: _palette(False), ".png", 0),
    "png_palette_trns": (lambda: _palette(True), ".png", 0),
    "webp_lossless": (lambda: save(Image.fromarray(pattern()), "WEBP", lossless=True), ".webp", 0),
    "webp_lossy": (lambda: save(Image.fromarray(pattern()), "WEBP", quality=90), ".webp", 16),
    "bmp": (lambda: save(Image.fromarray(pattern()), "BMP"), ".bmp", 0),
    "tiff": (lambda: save(Image.fromarray(pattern()), "TIFF"), ".tif", 0),
    "tiff_lzw": (
        lambda: save(Image.fromarray(pattern()), "TIFF", compression="tiff_lzw"),
        ".tiff",
        0,
    ),
    "tiff_rgb16": (_tiff_rgb16, ".tif", 0),
    "heic": (_heic, ".heic", 16),
    "avif": (lambda: save(Image.fromarray(pattern()), "AVIF", quality=90), ".avif", 16),
    "mpo": (_mpo, ".jpg", 12),
    "gif_animated": (_animated_gif, ".gif", 0),
    "cmyk_jpeg": (_cmyk_jpeg, ".jpg", 16),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_formats_decode_to_rgb(name: str, tmp_path: Path) -> None:
    make, suffix, tolerance = FORMATS[name]
    path = tmp_path / f"photo{suffix}"
    path.write_bytes(make())
    assert_pattern(load_image(path), tolerance)


@pytest.mark.parametrize("kind", ["str", "path", "bytes", "bytearray", "file"])
def test_every_source_kind(kind: str, tmp_path: Path) -> None:
    data = save(Image.fromarray(pattern()), "PNG")
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    source = {
        "str": str(path),
        "path": path,
        "bytes": data,
        "bytearray": bytearray(data),
        "file": io.BytesIO(data),
    }[kind]
    assert_pattern(load_image(source), 0)


def test_greyscale_becomes_three_equal_channels() -> None:
    grey = np.tile(np.arange(0, 240, 5, dtype=np.uint8), (32, 1))
    rgb = load_image(save(Image.fromarray(grey, "L"), "PNG"))
    assert rgb.shape == (32, 48, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], grey)


def test_16bit_grey_is_scaled_not_clipped() -> None:
    """Pillow's convert('L') clips 16-bit values at 255; a 50 % grey must stay 50 %."""
    values = np.full((32, 48), 128 * 257, np.uint16)
    values[:, :24] = 65535
    rgb = load_image(save(Image.fromarray(values), "PNG"))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, -1].tolist() == [128, 128, 128]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_flattened_onto_white(mode: str) -> None:
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[:, :, :3] = pattern()
    rgba[:, :24, 3] = 255  # left opaque
    rgba[:, 24:36, 3] = 0  # fully transparent
    rgba[:, 36:, 3] = 128  # half
    image = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        image = image.convert("LA")
    rgb = load_image(save(image, "PNG"))
    assert rgb[10, 30].tolist() == list(WHITE)
    expected_left = np.asarray(image.convert("RGBA"))[10, 5, :3]
    np.testing.assert_allclose(rgb[10, 5], expected_left, atol=1)
    opaque_blue = np.asarray(image.convert("RGBA"))[10, 40, :3].astype(float)
    np.testing.assert_allclose(rgb[10, 40], (opaque_blue * 128 + 255 * 127) / 255, atol=1.5)


def test_palette_transparent_index_becomes_white() -> None:
    image = Image.fromarray(pattern()).quantize(4)
    blue_index = image.getpixel((40, 10))
    rgb = load_image(save(image, "PNG", transparency=blue_index))
    assert (rgb[:, 24:] == 255).all()
    np.testing.assert_allclose(rgb[:, :24].reshape(-1, 3).mean(0), RED, atol=2)


def test_animated_gif_gives_the_first_frame() -> None:
    rgb = load_image(_animated_gif())
    assert_pattern(rgb, 0)  # the second frame is uniform grey


def exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(Image.fromarray(pattern(40, 20)), "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_6_is_rotated_upright() -> None:
    """Orientation 6 = rotate 90° clockwise to display: the stored left edge is the top."""
    rgb = load_image(exif_jpeg(6))
    assert rgb.shape == (40, 20, 3)
    np.testing.assert_allclose(rgb[4:16, 4:16].reshape(-1, 3).mean(0), RED, atol=12)
    np.testing.assert_allclose(rgb[24:36, 4:16].reshape(-1, 3).mean(0), BLUE, atol=12)


def test_exif_orientation_1_is_left_alone() -> None:
    assert_pattern(load_image(exif_jpeg(1)), 12, width=40, height=20)


# --- bad input ------------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height, with almost no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def corrupt_idat_crc(png: bytes) -> bytes:
    at = png.index(b"IDAT")
    length = struct.unpack(">I", png[at - 4 : at])[0]
    crc_at = at + 4 + length
    return png[:crc_at] + bytes([png[crc_at] ^ 0xFF]) + png[crc_at + 1 :]


def big_jpeg() -> bytes:
    noise = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    return save(Image.fromarray(noise), "JPEG", quality=90)


BAD_INPUTS = {
    "empty": (b"", r"empty"),
    "random_bytes": (np.random.default_rng(1).bytes(3000), r"not an image"),
    "text": (b"Dear diary, today I renamed a letter to .jpg\n" * 20, r"not an image"),
    "truncated_jpeg": (big_jpeg()[:6000], r"damaged or truncated JPEG"),
    "png_bad_idat_crc": (corrupt_idat_crc(save(Image.fromarray(pattern()), "PNG")), r"damaged"),
    "png_no_header": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, r"damaged PNG"),
    "bomb_40000": (png_header_only(40000, 40000), r"too large"),
    "over_50mp": (png_header_only(8000, 8000), r"too large: 8000x8000"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_raises_image_error(name: str, tmp_path: Path) -> None:
    data, message = BAD_INPUTS[name]
    path = tmp_path / "upload.jpg"
    path.write_bytes(data)
    for source in (path, data):
        with pytest.raises(ImageError, match=message):
            load_image(source)


@pytest.mark.parametrize("size", [(40000, 40000), (8000, 8000)])
def test_oversized_header_is_refused_before_decoding(size, monkeypatch) -> None:
    """Decoding a 40000x40000 image would need 4.8 GB: no pixel may be decoded."""

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageError, match="too large"):
        load_image(png_header_only(*size))


def test_limits_are_parameters() -> None:
    data = save(Image.fromarray(pattern()), "PNG")  # 48 x 32
    with pytest.raises(ImageError, match="too large"):
        load_image(data, max_megapixels=0.001)
    with pytest.raises(ImageError, match="too small"):
        load_image(data, min_side=33)
    assert load_image(data, min_side=32).shape == (32, 48, 3)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_image_error_is_a_value_error_without_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "holiday-photo.jpg"
    path.write_bytes(b"")
    with pytest.raises(ValueError) as info:
        load_image(path)
    assert isinstance(info.value, ImageError)
    assert "holiday-photo" not in str(info.value)  # the caller adds the name


def test_wrong_source_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        load_image(io.StringIO("text"))  # type: ignore[arg-type]


# --- arrays and encoding --------------------------------------------------------------


def test_as_rgb_accepts_grey_rgb_rgba() -> None:
    rgb = pattern()
    assert as_rgb(rgb) is rgb
    grey = rgb[:, :, 0]
    np.testing.assert_array_equal(as_rgb(grey)[:, :, 2], grey)
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    assert (as_rgb(rgba) == 255).all()
    with pytest.raises(ImageError, match="uint8"):
        as_rgb(rgb.astype(np.float32))
    with pytest.raises(ImageError, match="too small: 48x0"):
        as_rgb(rgb[:0])
    assert as_rgb(rgb[:1, :1]).shape == (1, 1, 3)  # any image with pixels


@pytest.mark.parametrize("channels", [0, 1, 3, 4])
def test_encode_png_round_trips(channels: int) -> None:
    rng = np.random.default_rng(channels)
    shape = (31, 45) if channels == 0 else (31, 45, channels)
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(array)
    assert data.startswith(b"\x89PNG")
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    np.testing.assert_array_equal(decoded, array.reshape(decoded.shape))
    mode = {0: "L", 1: "L", 3: "RGB", 4: "RGBA"}[channels]
    assert Image.open(io.BytesIO(data)).mode == mode


def test_encode_png_levels_give_the_same_pixels() -> None:
    array = np.random.default_rng(0).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    sizes = {level: len(encode_png(array, level)) for level in (0, 9)}
    assert sizes[0] > sizes[9] * 0.9  # random data barely compresses, but 0 stores raw
    for level in (0, 9):
        decoded = np.asarray(Image.open(io.BytesIO(encode_png(array, level))))
        np.testing.assert_array_equal(decoded, array)


def test_encode_png_16_bit_grey() -> None:
    array = np.array([[0, 1000, 65535]], np.uint16).repeat(3, axis=0)
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(array))))
    np.testing.assert_array_equal(decoded, array)


def test_encode_png_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="uint8 or uint16"):
        encode_png(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        encode_png(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match=r"0\.\.9"):
        encode_png(np.zeros((4, 4), np.uint8), compression=12)


def test_encode_jpeg() -> None:
    rgb = pattern()
    decoded = np.asarray(Image.open(io.BytesIO(encode_jpeg(rgb, quality=95))))
    assert_pattern(decoded, 12)
    with pytest.raises(ValueError, match="transparency"):
        encode_jpeg(np.zeros((8, 8, 4), np.uint8))


@pytest.mark.parametrize("channels", [0, 3, 4])
def test_encode_png_default_keeps_every_pixel_of_a_cutout(channels: int) -> None:
    """The fast default (Z_RLE, Up filter) is lossless, transparent RGB zeros included."""
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (67, 53, 4), dtype=np.uint8)
    rgba[:, :20, 3] = 0
    rgba[:, :20, :3] = 0
    rgba[30:, 30:] = (10, 20, 30, 255)
    array = rgba[:, :, 3] if channels == 0 else rgba[:, :, :channels]
    for level in range(10):
        decoded = np.asarray(Image.open(io.BytesIO(encode_png(array, level))))
        np.testing.assert_array_equal(decoded, array)
