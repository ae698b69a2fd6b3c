"""File names made from what a user sent: the API's download names, and output files on disk.

A name comes from an upload, a file on another system or an object-store key, so it can
hold anything: any script, emoji, quotes, control characters, path parts, or more bytes
than a file system allows. Two uses, two sets of rules:

* **Downloads** (the API's ``Content-Disposition``): :func:`clean_name` keeps what a person
  reads (every script, spaces, emoji) and drops what could break a header or a save
  dialog: path parts, control and bidi characters, Windows' reserved characters and
  device names, more than 255 bytes. :func:`content_disposition` then writes the header
  the RFC 6266 / RFC 5987 way, an ASCII ``filename="..."`` for old clients and the real
  name in ``filename*=UTF-8''...``, so it is always Latin-1 (HTTP headers are).
* **Files on disk** (CLI and batch outputs): :func:`disk_name` and :func:`disk_relpath`
  leave every name that the local file system accepts as it is, and change only what it
  would refuse (over 255 bytes anywhere; on Windows also ``<>:"\\|?*``, control
  characters, trailing dots and spaces, ``CON``, ``NUL``...). A changed name carries a
  short hash of the original (``~1a2b3c4d``), so two inputs never end up in one output.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Callable
from urllib.parse import quote

__all__ = [
    "MAX_NAME_BYTES",
    "ascii_fallback",
    "clean_name",
    "clip_bytes",
    "content_disposition",
    "disk_name",
    "disk_relpath",
    "download_name",
    "is_windows_device",
    "partial_name",
]

#: Longest file name (one path part) of ext4, APFS, NTFS and the ZIP readers, in bytes.
MAX_NAME_BYTES = 255
#: What Windows refuses in a file name besides control characters.
WINDOWS_RESERVED_CHARS = frozenset('<>:"/\\|?*')
#: Device names Windows reserves, with or without an extension (``con.txt`` too).
WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in ("0123456789" + "¹²³")}
)
#: Characters that reorder text (a name can then display as ``photo.exe`` reversed).
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
#: RFC 5987 attr-char besides letters and digits (``quote`` keeps ``_.-~`` itself).
_ATTR_CHAR_SAFE = "!#$&+^`|"
#: An extension longer than this is part of the name, not an extension.
_MAX_EXTENSION_BYTES = 16


def clip_bytes(text: str, max_bytes: int, encode: Callable[[str], bytes] | None = None) -> str:
    """The longest start of ``text`` whose encoding is at most ``max_bytes``, cut between
    characters (never inside one, as cutting the bytes would)."""
    encode = encode or _utf8
    if len(encode(text)) <= max_bytes:
        return text
    kept, used = [], 0
    for char in text:
        used += len(encode(char))
        if used > max_bytes:
            break
        kept.append(char)
    return "".join(kept)


def is_windows_device(name: str) -> bool:
    """Whether Windows reads ``name`` as a device (``CON``, ``nul.png``, ``COM1 .jpg``)."""
    return name.split(".", 1)[0].rstrip(" ").upper() in WINDOWS_DEVICES


# --- downloads ---------------------------------------------------------------------------


def clean_name(name: str, fallback: str = "download") -> str:
    """The file name a client should save ``name`` as: its last path part, NFC, without
    control, bidi or Windows-reserved characters (each becomes ``_``), leading and trailing
    dots and spaces, or device names, cut to 255 UTF-8 bytes keeping the extension.

    Idempotent, and never empty (``fallback``), so what a header carries is exactly this.
    """
    base = unicodedata.normalize("NFC", re.split(r"[/\\]", name)[-1])
    base = "".join("_" if _unsafe_in_download(char) else char for char in base).strip(" .")
    if is_windows_device(base):
        base = "_" + base
    stem, dot, ext = base.rpartition(".")
    if not dot or len(_utf8(ext)) > _MAX_EXTENSION_BYTES:
        stem, ext = base, ""
    else:
        ext = "." + ext
    if len(_utf8(base)) > MAX_NAME_BYTES:
        stem = clip_bytes(stem, MAX_NAME_BYTES - len(_utf8(ext))).rstrip(" .")
    return stem + ext or fallback


def download_name(upload_name: str, ending: str, fallback: str = "image") -> str:
    """``<the upload's stem><ending>``, a :func:`clean_name` (``ending`` always kept whole):
    ``("IMG 1.jpg", "-nobg.png")`` -> ``"IMG 1-nobg.png"``."""
    base = clean_name(upload_name, fallback="")
    stem = base.rpartition(".")[0] if "." in base else base
    stem = stem or fallback
    stem = clip_bytes(stem, MAX_NAME_BYTES - len(_utf8(ending))).rstrip(" .") or fallback
    return clean_name(stem + ending, fallback=fallback + ending)


def ascii_fallback(name: str) -> str:
    """An ASCII stand-in for a name, for clients that ignore ``filename*``: accents dropped
    (``é`` -> ``e``), each run of other non-ASCII characters one ``_``; no quote, backslash,
    slash or percent sign (some clients percent-decode ``filename``)."""
    folded = "".join(
        char for char in unicodedata.normalize("NFKD", name) if not unicodedata.combining(char)
    )
    folded = re.sub(r'[^\x20-\x7e]+|["%/\\]', "_", folded)
    return clean_name(folded)


def content_disposition(filename: str, disposition: str = "inline") -> str:
    """A ``Content-Disposition`` value suggesting :func:`clean_name` of ``filename``.

    A plain ASCII name is one ``filename="..."``; any other name adds the real one as
    ``filename*=UTF-8''<percent-encoded>`` (RFC 6266, RFC 5987) after an ASCII fallback.
    The value is always ASCII, so Latin-1 encodable, and has no CR, LF or quote inside.
    """
    name = clean_name(filename)
    fallback = ascii_fallback(name)
    if fallback == name:
        return f'{disposition}; filename="{name}"'
    encoded = quote(name, safe=_ATTR_CHAR_SAFE, encoding="utf-8")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _unsafe_in_download(char: str) -> bool:
    """Control, separator (line, paragraph), surrogate, bidi or Windows-reserved."""
    return (
        char in WINDOWS_RESERVED_CHARS
        or char in BIDI_CONTROLS
        or unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp")
    )


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# --- files on disk -----------------------------------------------------------------------


def disk_name(
    stem: str,
    ending: str = "",
    *,
    windows: bool = os.name == "nt",
    max_bytes: int = MAX_NAME_BYTES,
) -> str:
    """``stem + ending`` as a file name the local file system accepts.

    Unchanged when it already does (every script stays as it is). Otherwise the
    characters it refuses become ``_``, a Windows device name gets a ``_`` in front,
    the stem is cut to fit ``max_bytes`` (as the file system counts them) and a hash
    of the original name follows it: ``<stem>~1a2b3c4d<ending>``.
    """
    name = stem + ending
    if not _refused_on_disk(name, windows, max_bytes):
        return name
    mark = "~" + hashlib.sha256(_disk_bytes(name)).hexdigest()[:8]
    ending = _replace_refused(ending, windows)
    stem = _replace_refused(stem, windows)
    if stem in ("", ".", ".."):
        stem = "_"
    elif windows and is_windows_device(stem):
        stem = "_" + stem
    room = max_bytes - len(_disk_bytes(mark + ending))
    return clip_bytes(clip_bytes(stem, room, _disk_bytes) + mark + ending, max_bytes, _disk_bytes)


def partial_name(name: str, ending: str = ".part", room: int = 0) -> str:
    """The hidden name a file is written under before it is renamed to ``name``:
    ``.<name><ending>``, a :func:`disk_name` within 255 bytes less ``room`` (what the
    caller still adds, such as mkstemp's random letters), so a name that fits still can."""
    return disk_name("." + name, ending, max_bytes=MAX_NAME_BYTES - room)


def disk_relpath(
    rel: str,
    ending: str = "",
    *,
    windows: bool = os.name == "nt",
    max_bytes: int = MAX_NAME_BYTES,
) -> str:
    """A '/'-separated relative path plus ``ending``, each part a :func:`disk_name`.

    ``.``, ``..`` and empty parts become names too, so the path cannot climb out of the
    folder it is joined to (an object-store key may hold ``../``).
    """
    *folders, last = rel.split("/")
    parts = [disk_name(part, windows=windows, max_bytes=max_bytes) for part in folders]
    parts.append(disk_name(last, ending, windows=windows, max_bytes=max_bytes))
    return "/".join(parts)


def _refused_on_disk(name: str, windows: bool, max_bytes: int) -> bool:
    return (
        name in ("", ".", "..")
        or any(_refused_char(char, windows) for char in name)
        or len(_disk_bytes(name)) > max_bytes
        or (windows and (name[-1] in " ." or is_windows_device(name)))
    )


def _refused_char(char: str, windows: bool) -> bool:
    if char in "/\0" or (windows and (char in WINDOWS_RESERVED_CHARS or ord(char) < 32)):
        return True
    try:
        os.fsencode(char)  # a lone surrogate that no file system name can hold
    except UnicodeEncodeError:
        return True
    return False


def _replace_refused(text: str, windows: bool) -> str:
    return "".join("_" if _refused_char(char, windows) else char for char in text)


def _disk_bytes(text: str) -> bytes:
    """The bytes a name takes on disk (POSIX keeps undecodable bytes as surrogates)."""
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        return _utf8(text)
