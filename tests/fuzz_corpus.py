"""A corpus of damaged, odd, enormous and misnamed files, made on demand, and what each
must come to: used as an image, or left out and named with a reason. Never a traceback,
never a hang.

`write_corpus(folder)` writes every file into `folder` (a class folder) and returns
{file name (str, as os.listdir gives it): expectation}, where an expectation is USED or
a substring of the reason the file is left out with.
"""

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

USED = "used"


def _rgb(seed: int, size=(40, 30)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _png(seed=0, mode="RGB", size=(40, 30)) -> bytes:
    image = Image.fromarray(_rgb(seed, size))
    if mode == "I;16":
        return _save(Image.fromarray(_rgb(seed, size)[..., 0].astype(np.uint16) * 257), "PNG")
    return _save(image.convert(mode), "PNG")


def _chunk_ends(png: bytes) -> list[int]:
    """Offsets at which each PNG chunk ends (after its CRC)."""
    ends, offset = [], 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        offset += 12 + length
        ends.append(offset)
    return ends


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG, its header claiming another size (with a valid CRC)."""
    data = bytearray(png)
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def with_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG, its start-of-frame claiming another size."""
    data = bytearray(jpeg)
    offset = 2
    while data[offset + 1] not in (0xC0, 0xC1, 0xC2):
        offset += 2 + struct.unpack(">H", data[offset + 2 : offset + 4])[0]
    data[offset + 5 : offset + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _corrupt_png_data(png: bytes) -> bytes:
    """Signature, header and end intact; the compressed pixels zeroed."""
    data = bytearray(png)
    start = data.index(b"IDAT") + 4
    data[start : start + 40] = bytes(40)
    return bytes(data)


def gif_bomb(frames=100, side=1000) -> bytes:
    """A few kilobytes of GIF whose frames together hold frames * side^2 pixels: every
    frame is one clear code and an end code, which its decoder inflates in full."""
    out = bytearray(b"GIF89a" + struct.pack("<HH", side, side) + bytes([0x80, 0, 0]))
    out += bytes(6)  # a two-colour global table
    for _ in range(frames):
        out += b"\x2c" + struct.pack("<HHHH", 0, 0, side, side) + b"\x00"
        out += b"\x02\x02\x4c\x01\x00"  # LZW minimum code size 2; clear, end; terminator
    return bytes(out + b"\x3b")


def _animated_gif() -> bytes:
    frames = [Image.fromarray(_rgb(k)).convert("P") for k in range(3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def _exif_rotated_jpeg() -> bytes:
    image = Image.fromarray(_rgb(5))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    return _save(image, "JPEG", exif=exif.tobytes())


def _cases() -> dict[str, tuple[bytes, str]]:
    png = _png(1)
    jpeg = _save(Image.fromarray(_rgb(2)), "JPEG", quality=90)
    cases = {
        "rgb.png": (png, USED),
        "palette.png": (_png(3, "P"), USED),
        "alpha.png": (_png(4, "RGBA"), USED),
        "grey16.png": (_png(6, "I;16"), USED),
        "grey.png": (_png(7, "L"), USED),
        "cmyk.jpg": (_save(Image.fromarray(_rgb(8)).convert("CMYK"), "JPEG"), USED),
        "progressive.jpg": (_save(Image.fromarray(_rgb(9)), "JPEG", progressive=True), USED),
        "exif-rotated.jpg": (_exif_rotated_jpeg(), USED),
        "plain.bmp": (_save(Image.fromarray(_rgb(10)), "BMP"), USED),
        "animated-gif-named.png": (_animated_gif(), USED),
        "zero-bytes.png": (b"", "empty file"),
        "wrong-magic.png": (b"\x89PNX" + png[4:], "not an image"),
        "html.png": (b"<html><body>404 Not Found</body></html>", "not an image"),
        "half-a-jpeg.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "jpeg-magic-then-text.jpg": (jpeg[:3] + b"just text" * 10, "truncated"),
        "corrupt-data.png": (_corrupt_png_data(png), "corrupt image data"),
        "png-bomb.png": (with_png_size(png, 20_000, 20_000), "too many pixels"),
        "jpeg-bomb.jpg": (with_jpeg_size(jpeg, 30_000, 30_000), "too many pixels"),
        "gif-bomb-named.png": (gif_bomb(), "too many pixels"),
        "scan.tiff": (_save(Image.fromarray(_rgb(11)), "TIFF"), "unsupported format (TIFF"),
        "photo.ppm": (_save(Image.fromarray(_rgb(12)), "PPM"), "unsupported format (PPM"),
        "name with\nnewline.png": (_png(13), USED),
        "가위 손 (1).png": (_png(14), USED),
    }
    ends = _chunk_ends(png)
    for k, end in enumerate(ends[:-1]):  # cut at every chunk boundary, and inside each chunk
        cases[f"cut-after-chunk-{k}.png"] = (png[:end], "truncated")
        # Inside the last chunk (IEND) the end looks whole to the screen; the decoder says.
        inside = "corrupt image data" if k + 2 == len(ends) else "truncated"
        cases[f"cut-inside-chunk-{k + 1}.png"] = (png[: end + 10], inside)
    cases["cut-in-signature.png"] = (png[:5], "not an image")
    return cases


def write_corpus(folder: str) -> dict[str, str]:
    """Writes the corpus into `folder`; returns {name: USED or a reason's substring}."""
    os.makedirs(folder, exist_ok=True)
    expected = {}
    for name, (content, expectation) in _cases().items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(content)
        expected[name] = expectation
    # A name that is not UTF-8 (Latin-1 é), as old disks and foreign zips hold them.
    latin1 = os.fsdecode(b"caf\xe9.png")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.png"), "wb") as f:
        f.write(_png(15))
    expected[latin1] = USED
    os.mkfifo(os.path.join(folder, "fifo.png"))
    expected["fifo.png"] = "not a regular file"
    os.symlink("nowhere.png", os.path.join(folder, "dangling.png"))
    expected["dangling.png"] = "unreadable (No such file or directory)"
    os.symlink("loop.png", os.path.join(folder, "loop.png"))
    expected["loop.png"] = "unreadable (Too many levels of symbolic links)"
    os.makedirs(os.path.join(folder, "folder.png"))  # a folder named like an image: not listed
    os.symlink("..", os.path.join(folder, "parent-link"))  # not followed, as IDG's walk
    return expected
