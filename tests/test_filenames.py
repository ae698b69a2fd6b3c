"""File names built from what a user sent: download headers, CLI and batch outputs, the
app's ZIP, the batch manifest (segmentation/filenames.py and where it is used).

Names come in every script, with emoji, quotes, control characters, path parts and more
bytes than a file system takes. A header must stay Latin-1 with no line break in it and
say the real name; a file on disk must be writable, stay in its folder, and two inputs
must never share an output. The API's own answers are in tests/test_api.py.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import app_support
from segmentation.filenames import (
    MAX_NAME_BYTES,
    clean_name,
    content_disposition,
    disk_name,
    disk_relpath,
    download_name,
)

#: Names a person's files really have, and the awkward ones, with what a download keeps.
ODD_NAMES = {
    "chinese": ("人像照片.jpg", "人像照片"),
    "cyrillic": ("Фотография.jpg", "Фотография"),
    "greek": ("φωτογραφία.jpg", "φωτογραφία"),
    "arabic": ("صورة شخصية.jpg", "صورة شخصية"),
    "emoji": ("party 🎉.jpg", "party 🎉"),
    "latin-1 and cjk": ("unicode name é 人.jpg", "unicode name é 人"),
    "quote": ('say "cheese".jpg', "say _cheese_"),
    "crlf": ("a\r\nSet-Cookie: evil=1.jpg", "a__Set-Cookie_ evil=1"),
    "path": ("../../etc/passwd.jpg", "passwd"),
    "windows path": ("..\\..\\Users\\me.jpg", "me"),
    "nul and tab": ("a\x00b\tc.jpg", "a_b_c"),
    "bidi override": ("photo\u202egpj.exe", "photo_gpj"),
    "device name": ("CON.jpg", "_CON"),
    "nothing left": ("../..", "image"),
}
#: A name of 300 characters: 1200 bytes of UTF-8, far over a file system's 255.
LONG_NAME = "长" * 150 + "x" * 146 + ".jpg"


def suggested_name(header: str) -> str:
    """The file name a client reads from Content-Disposition (filename* wins, RFC 6266)."""
    extended = re.search(r"filename\*=UTF-8''([^;\s]+)", header)
    if extended:
        return unquote(extended.group(1), encoding="utf-8", errors="strict")
    plain = re.fullmatch(r'(inline|attachment); filename="([^"\\]*)"', header)
    assert plain, header
    return plain.group(2)


def assert_safe_header(header: str) -> None:
    """Latin-1 (in fact ASCII), one line, and its quoted fallback closes where it should."""
    header.encode("ascii")
    assert not set(header) & {"\r", "\n", "\x00"}, repr(header)
    assert re.match(r'(inline|attachment); filename="[ -!#-\[\]-~]*"(; filename\*=|$)', header)


# --- the header builder -----------------------------------------------------------------


@pytest.mark.parametrize("case", ODD_NAMES, ids=list(ODD_NAMES))
def test_download_name_keeps_the_readable_name(case: str) -> None:
    upload, stem = ODD_NAMES[case]
    name = download_name(upload, "-nobg.png")
    assert name == f"{stem}-nobg.png"
    header = content_disposition(name)
    assert_safe_header(header)
    assert suggested_name(header) == name
    assert ("filename*=" in header) == (not name.isascii())


def test_a_long_name_is_cut_to_255_bytes_keeping_its_ending() -> None:
    name = download_name(LONG_NAME, "-mask.png")
    assert name.endswith("-mask.png") and name.startswith("长" * 70)
    assert MAX_NAME_BYTES - 3 < len(name.encode()) <= MAX_NAME_BYTES
    assert suggested_name(content_disposition(name)) == name


def test_header_fallback_is_ascii_and_plain_names_are_unchanged() -> None:
    assert content_disposition("me-nobg.png") == 'inline; filename="me-nobg.png"'
    assert content_disposition("Café 人.png", "attachment") == (
        "attachment; filename=\"Cafe _.png\"; filename*=UTF-8''Caf%C3%A9%20%E4%BA%BA.png"
    )
    # A percent sign would be decoded by some clients: only filename* carries it.
    assert content_disposition("100%.png") == (
        "inline; filename=\"100_.png\"; filename*=UTF-8''100%25.png"
    )


#: Text with far more of the troublesome characters than chance would give.
AWKWARD = st.lists(
    st.characters(codec=None, exclude_categories=())
    | st.sampled_from([*'"\\/\r\n\t\x00.% ;:*?<>|\u202e\u2028\ud800', "..", "CON", "人像"]),
    max_size=300,
).map("".join)


@given(name=AWKWARD)
def test_header_builder_property(name: str) -> None:
    """Any name: the header is ASCII with no line break, and filename* says clean_name."""
    header = content_disposition(name)
    assert_safe_header(header)
    cleaned = clean_name(name)
    assert suggested_name(header) == cleaned
    assert cleaned and not set(cleaned) & set('/\\"\r\n\x00')
    assert len(cleaned.encode()) <= MAX_NAME_BYTES
    assert clean_name(cleaned) == cleaned


@given(name=AWKWARD)
def test_download_name_property(name: str) -> None:
    """Any upload name: the ending whole, at most 255 bytes, and unchanged by the header."""
    result = download_name(name, "-background.jpg")
    assert result.endswith("-background.jpg") and len(result) > len("-background.jpg")
    assert len(result.encode()) <= MAX_NAME_BYTES
    assert clean_name(result) == result


# --- names on disk ----------------------------------------------------------------------


@pytest.mark.parametrize("windows", [False, True])
def test_names_a_file_system_accepts_stay_as_they_are(windows: bool) -> None:
    for stem in ("人像照片", "Фото", "صورة", "party 🎉", "a.b", "x" * 251):
        assert disk_name(stem, ".png", windows=windows) == stem + ".png"


def test_what_windows_refuses_is_changed_and_marked() -> None:
    for stem in ("a:b", 'say "hi"', "what?", "tab\there", "CON", "nul", "COM1", "LPT²"):
        name = disk_name(stem, ".png", windows=True)
        assert re.fullmatch(r"[^<>:\"/\\|?*\x00-\x1f]+~[0-9a-f]{8}\.png", name), name
        assert not name.upper().startswith(("CON.", "NUL.", "COM1."))
    assert disk_name("a:b", ".png", windows=False) == "a:b.png"  # fine on Linux and macOS
    assert disk_name("CON", ".png", windows=False) == "CON.png"
    assert disk_name("folder. ", windows=True).startswith("folder. ~")  # no trailing dot


def test_long_names_fit_and_stay_apart(tmp_path: Path) -> None:
    """Two 300-character names sharing their first 250 bytes: two files, both writable."""
    first, second = "长" * 100 + "a" * 200, "长" * 100 + "b" * 200
    names = {disk_name(stem, ".jpg.png") for stem in (first, second)}
    assert len(names) == 2
    for name in names:
        assert len(name.encode()) <= MAX_NAME_BYTES and name.endswith(".jpg.png")
        (tmp_path / name).write_bytes(b"written")


@given(stem=AWKWARD, windows=st.booleans())
def test_disk_name_property(stem: str, windows: bool) -> None:
    name = disk_name(stem, ".png", windows=windows)
    assert name not in ("", ".", "..") and "/" not in name and "\x00" not in name
    assert len(name.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES
    if windows:
        assert not set(name) & set('<>:"\\|?*') and min(map(ord, name)) >= 32
    assert disk_name(stem + "x", ".png", windows=windows) != name


def test_relative_paths_cannot_climb_out() -> None:
    parts = disk_relpath("../../etc/passwd", ".png").split("/")
    assert parts[2:] == ["etc", "passwd.png"] and all(p.startswith("_~") for p in parts[:2])
    assert disk_relpath("a/./b", ".png").split("/")[1].startswith("_~")
    assert disk_relpath("人/Фото", ".png") == "人/Фото.png"


# --- the CLI and batch outputs ----------------------------------------------------------


def photo(path: Path, size: tuple[int, int] = (24, 18)) -> Path:
    rng = np.random.default_rng(len(path.name))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


#: Input names (on Linux) -> the output name the CLI and batch must write.
DISK_NAMES = {
    "人像照片.jpg": "人像照片.png",
    "Фото.png": "Фото.png",
    "party 🎉.jpg": "party 🎉.png",
    "a:b?.jpg": "a:b?.png",  # legal on Linux and macOS, so kept
    "CON.jpg": "CON.png",
}
#: 251 + 4 bytes: the longest name ext4 takes; two of them share a stem, so their outputs
#: keep the extension (``.jpg.png``), 259 bytes without the cut.
LONG_STEM = "x" * 251


def odd_folder(root: Path) -> Path:
    for name in DISK_NAMES:
        photo(root / name)
    photo(root / f"{LONG_STEM}.jpg")
    photo(root / f"{LONG_STEM}.png")
    return root


def assert_odd_outputs(out: Path, written: list[str]) -> None:
    assert set(DISK_NAMES.values()) <= set(written)
    long_ones = [n for n in written if n.startswith(LONG_STEM[:200])]
    assert len(long_ones) == 2 and all(len(n.encode()) <= MAX_NAME_BYTES for n in long_ones)
    for name in written:
        with Image.open(out / name) as image:
            assert image.size == (24, 18)


def test_cli_writes_odd_and_long_names(
    tmp_path: Path, tiny_model_path: Path, reuse_tiny_segmenter
) -> None:
    from segmentation.cli import main

    folder = odd_folder(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["cutout", str(folder), "-o", str(out), "--model", str(tiny_model_path)]) == 0
    assert_odd_outputs(out, [p.name for p in out.iterdir()])


def test_video_with_the_longest_name_renders(tmp_path: Path) -> None:
    """255 bytes in, 256 out (``.webm``), and the hidden file it is written to first."""
    from segmentation.cli.video import collect_videos
    from segmentation.video import remove_background
    from tests.test_video import BlockSegmenter, write_clip

    source = write_clip(tmp_path / f"{'v' * 251}.mp4", frames=2)
    out = tmp_path / "out"
    pairs, failures = collect_videos([source], out, ".webm")
    assert not failures and len(pairs) == 1
    target = pairs[0][1]
    assert target.name.endswith(".webm") and len(target.name.encode()) <= MAX_NAME_BYTES
    out.mkdir()
    remove_background(source, target, BlockSegmenter(), output="webm")
    assert [p.name for p in out.iterdir()] == [target.name]  # no partial file left


@pytest.fixture
def shared_segmenter(monkeypatch, tiny_segmenter):
    import segmentation.segmenter

    monkeypatch.setattr(segmentation.segmenter, "load_segmenter", lambda path: tiny_segmenter)
    return tiny_segmenter


@pytest.mark.parametrize("manifest", ["manifest.csv", "manifest.parquet"])
def test_batch_writes_odd_names_and_a_utf8_manifest(
    shared_segmenter, tmp_path: Path, manifest: str
) -> None:
    from segmentation.batch import read_manifest, run_batch

    folder = odd_folder(tmp_path / "in")
    out = tmp_path / "out"
    where = str(tmp_path / manifest)
    summary = run_batch(str(folder), str(out), engine="local", manifest=where, progress=False)
    assert (summary.written, summary.failed) == (len(DISK_NAMES) + 2, 0)
    assert_odd_outputs(out, [p.name for p in out.iterdir()])

    rows = read_manifest(where)
    inputs = {Path(row["input"]).name for row in rows}
    assert set(DISK_NAMES) <= inputs
    assert {Path(row["output"]).name for row in rows} == {p.name for p in out.iterdir()}
    data = Path(where).read_bytes()
    if manifest.endswith(".csv"):
        assert "人像照片.jpg" in data.decode("utf-8")  # UTF-8, not the locale's encoding
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(where)
        assert all(str(field.type) == "string" for field in table.schema)  # UTF-8 by spec
        assert "Фото.png" in {Path(p).name for p in table.column("input").to_pylist()}


def test_batch_names_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    from segmentation.batch import list_jobs, resolve

    folder = tmp_path / "in"
    photo(folder / "fine.jpg")
    with open(bytes(folder) + b"/caf\xe9.jpg", "wb") as latin1_named:  # as on an old disk
        latin1_named.write(b"not read")
    in_fs, in_root = resolve(folder)
    out_fs, out_root = resolve(tmp_path / "out")
    with pytest.raises(ValueError, match=r"caf\\xe9\.jpg: not a UTF-8 name.*rename it"):
        list_jobs(in_fs, in_root, out_fs, out_root, ".png")


# --- the app's downloads and ZIP --------------------------------------------------------


def test_app_zip_entries_read_back_with_their_names(tmp_path: Path) -> None:
    """Every odd upload name gives a ZIP entry that zipfile reads back and can extract."""
    uploads = [name for name, _ in ODD_NAMES.values()] + [LONG_NAME, "人像照片.jpg"]
    names = [app_support.output_name(upload, "nobg", "png") for upload in uploads]
    data = app_support.build_zip((name, name.encode()) for name in names)

    archive = zipfile.ZipFile(io.BytesIO(data))
    entries = archive.infolist()
    assert len(entries) == len(uploads)
    assert [entry.filename for entry in entries][:2] == ["人像照片-nobg.png", "Фотография-nobg.png"]
    assert entries[-1].filename == "人像照片-nobg-2.png"  # the same name twice stays apart
    for entry in entries:
        assert not re.search(r"[/\\\x00-\x1f]|^\.", entry.filename), entry.filename
        assert len(entry.filename.encode()) <= MAX_NAME_BYTES
        assert bool(entry.flag_bits & 0x800) == (not entry.filename.isascii())  # UTF-8 flag
    archive.extractall(tmp_path)
    for entry in entries:
        assert (tmp_path / entry.filename).read_bytes() == archive.read(entry)


def test_app_download_names_of_odd_uploads() -> None:
    assert app_support.output_name("人像照片.jpg", "mask", "png") == "人像照片-mask.png"
    assert app_support.output_name("cafe\u0301.jpg", "nobg", "png") == "café-nobg.png"  # NFC
    long_name = app_support.output_name(LONG_NAME, "background", "jpg")
    assert long_name.endswith("-background.jpg")
    assert len(long_name.encode()) <= MAX_NAME_BYTES - 3  # room for "-2" in a ZIP
