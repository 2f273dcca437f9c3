"""Finding the image files that cannot be read, and saying why, before any training step.

Two passes. `inspect_header` reads a file's first and last bytes in Python: names that
are not regular files, empty files, unknown signatures, formats TensorFlow cannot decode
(TIFF, PPM/PGM/PBM), truncations that show at the end of the file, and images over PIL's
pixel limit (decompression bombs, which IDG would refuse; for a GIF every frame counts,
as TensorFlow's reader inflates them all) are found without decoding anything; `screen`
reads many headers at once. The files that pass are decoded for real where decoding
happens (`prepare.prepare`): before training when a cache is filled, else as the
epochs read them; a file the decoder rejects is "corrupt image data".
"""

import struct
from typing import Callable, NamedTuple, Optional, Sequence

from absl import logging

from rps_tfdata.infra import fs
from rps_tfdata.infra.fs import printable
from rps_tfdata.pipeline.reading import progress

# PIL's Image.MAX_IMAGE_PIXELS: int(1024 * 1024 * 1024 // 4 // 3). IDG reads through PIL.
MAX_IMAGE_PIXELS = 89_478_485
CORRUPT = "corrupt image data (the decoder failed)"

_HEAD = 4096  # PNG, GIF and BMP sizes sit in the first 30 bytes
_JPEG_HEAD = 1 << 20  # JPEG's frame header follows EXIF and its thumbnail: read on
_TAIL = 64
# Files up to this size are read whole: one request instead of two on a bucket.
_WHOLE = 1 << 20
# The formats TensorFlow decodes, by their first bytes, in the order of
# `decode.decoded_pixels`'s kinds (which reads the same signatures in the graph).
SIGNATURES = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "bmp": (b"BM",),
}
(_PNG,), (_JPEG,), _GIFS, (_BMP,) = SIGNATURES.values()
_TIFFS = (b"II*\x00", b"MM\x00*")
_PNMS = tuple(b"P%d" % i for i in range(1, 7))


class BadImage(NamedTuple):
    """A file left out, and why, as written to metrics.json."""

    path: str
    reason: str


def _png_size(head: bytes) -> Optional[tuple[int, int]]:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _jpeg_size(head: bytes) -> Optional[tuple[int, int]]:
    """Width and height from the first start-of-frame marker, walking the segments."""
    offset = 2
    while offset + 9 <= len(head):
        if head[offset] != 0xFF:
            return None
        marker = head[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        length = struct.unpack(">H", head[offset + 2 : offset + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[offset + 5 : offset + 9])
            return width, height
        offset += 2 + length
    return None


def _bmp_size(head: bytes) -> Optional[tuple[int, int]]:
    if len(head) < 26:
        return None
    width, height = struct.unpack("<ii", head[18:26])
    return abs(width), abs(height)


def _colour_table(packed: int) -> int:
    """Bytes of a GIF colour table, from the packed flags byte that announces it."""
    return 3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0


def _gif_pixels(data: bytes) -> Optional[int]:
    """The canvas's pixels plus every frame's: what TensorFlow's GIF reader allocates
    (it inflates all frames before it returns the first). `data` is the whole file.
    The twin of `decode.decoded_pixels` for GIFs, which serving runs in its graph."""
    if len(data) < 13:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    total = width * height
    position = 13 + _colour_table(data[10])
    while position < len(data) and data[position] in (0x21, 0x2C):
        if data[position] == 0x2C:  # a frame: its descriptor, then its own colour table
            frame = data[position + 5 : position + 9].ljust(4, b"\x00")
            frame_width, frame_height = struct.unpack("<HH", frame)
            total += frame_width * frame_height
            table = _colour_table(data[position + 9]) if position + 9 < len(data) else 0
            position += 11 + table
        else:  # an extension: introducer and label
            position += 2
        while position < len(data) and data[position]:  # sub-blocks: length, bytes
            position += data[position] + 1
        position += 1
    return total


def pixels(head: bytes) -> Optional[int]:
    """How many pixels decoding the file would allocate, from its first bytes (the whole
    file for a GIF); None for an unknown signature or a header with no size."""
    dims = None
    if head.startswith(_PNG):
        dims = _png_size(head)
    elif head.startswith(_JPEG):
        dims = _jpeg_size(head)
    elif head.startswith(_GIFS):
        return _gif_pixels(head)
    elif head.startswith(_BMP):
        dims = _bmp_size(head)
    return None if dims is None else dims[0] * dims[1]


def _format_problem(head: bytes, tail: bytes, size: int) -> Optional[str]:
    """The reason a file of known signature cannot be decoded, from its bytes alone."""
    if head.startswith(_PNG):
        truncated = b"IEND" not in tail
    elif head.startswith(_JPEG):
        truncated = b"\xff\xd9" not in tail
    elif head.startswith(_GIFS):
        truncated = not tail.rstrip(b"\x00").endswith(b"\x3b")
    elif head.startswith(_BMP):
        truncated = len(head) < 6 or struct.unpack("<I", head[2:6])[0] > size
    else:
        return None
    if truncated:
        return "truncated (the file ends before the image does)"
    count = pixels(head)
    if count is None:
        return "corrupt header (no image size found)"
    if count > MAX_IMAGE_PIXELS:
        return too_many_pixels(count)
    return ""


def too_many_pixels(count: int) -> str:
    """The reason for a file whose decoding would allocate `count` pixels."""
    return (
        f"too many pixels ({count:,} > PIL's limit of {MAX_IMAGE_PIXELS:,}: a possible "
        "decompression bomb)"
    )


def inspect_stat(path: str) -> Optional[str]:
    """The reason `path` cannot be read at all, from its stat alone (a folder, FIFO or
    device, an empty file, a dangling link), or None. An object in a bucket is a regular
    file: it is not stat'ed (a request per file)."""
    if fs.is_remote(path):
        return None
    try:
        status = fs.stat(path)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    return _status_problem(status)


def _status_problem(status: fs.Stat) -> Optional[str]:
    if not status.is_regular:  # opening a FIFO would wait for a writer
        return "not a regular file (a folder, FIFO, socket or device)"
    return "empty file" if status.size == 0 else None


def inspect_header(path: str, status: Optional[fs.Stat] = None) -> Optional[str]:
    """The reason `path` cannot be an image we decode, or None if it looks decodable.
    `status`: its stat, when the caller has it (one request less on a bucket)."""
    try:
        status = status or fs.stat(path)
        if not status.is_regular:
            return _status_problem(status)
        size = status.size
        with fs.open_file(path, "rb") as f:
            if size <= _WHOLE:  # one read (one request on a bucket) for a small file
                head = f.read()
                tail = head[-_TAIL:]
            else:
                head = f.read(_HEAD)
                if head.startswith(_JPEG) and _jpeg_size(head) is None:
                    head += f.read(_JPEG_HEAD - _HEAD)
                elif head.startswith(_GIFS):  # its frames follow one another to the end
                    head += f.read()
                f.seek(max(size - _TAIL, 0))
                tail = f.read(_TAIL)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if size == 0:
        return "empty file"
    if head.startswith(_TIFFS):
        return "unsupported format (TIFF: TensorFlow cannot decode it; convert it to PNG)"
    if head.startswith(_PNMS):
        return "unsupported format (PPM/PGM/PBM: TensorFlow cannot decode it; convert it to PNG)"
    problem = _format_problem(head, tail, size)
    if problem is None:
        return "not an image (unknown file signature)"
    return problem or None


def screen(
    paths: Sequence[str],
    reasons: Optional[Sequence[Optional[str]]] = None,
    say: Callable[[str], None] = logging.info,
) -> tuple[list[int], list[BadImage]]:
    """Positions of the files whose header looks decodable, and the files that do not;
    on a remote file system many headers are read at once, and a read of them that
    takes more than a few seconds says how far it is through `say`. `reasons`: each
    file's `inspect_header` result when it is known already (`file_facts`)."""
    candidates, bad = [], []
    if reasons is None:
        what = f"Reading the headers of {len(paths):,} files"
        reasons = progress.for_each_file(what, inspect_header, paths, say)
    for i, (path, reason) in enumerate(zip(paths, reasons, strict=True)):
        if reason is None:
            candidates.append(i)
        else:
            bad.append(BadImage(path, reason))
    return candidates, bad


def as_records(bad: list[BadImage]) -> list[dict[str, str]]:
    """The `skipped_images` entries of metrics.json."""
    return [{"path": printable(b.path), "reason": b.reason} for b in bad]
