"""A minimal PNG encoder: 8-bit RGB images, no dependency beyond zlib.

A PNG file is the 8-byte signature followed by chunks, each
``length (4 bytes, big-endian) | type (4 ASCII bytes) | data | CRC-32 of type and data``.
This writes three: ``IHDR`` (width, height, bit depth 8, colour type 2 = RGB,
compression 0, filter 0, interlace 0), one ``IDAT`` (the zlib stream of the
rows, each preceded by its filter byte 0 = none) and an empty ``IEND``.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

__all__ = ["SIGNATURE", "encode_png", "write_png"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB, _DEPTH = 2, 8


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(rgb: np.ndarray) -> bytes:
    """The PNG file of an (H, W, 3) uint8 image."""
    pixels = np.asarray(rgb)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3 or 0 in pixels.shape[:2]:
        raise ValueError(f"expected a non-empty (H, W, 3) uint8 image, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    rows = np.zeros((height, 1 + 3 * width), np.uint8)  # column 0: filter type 0 on every row
    rows[:, 1:] = pixels.reshape(height, 3 * width)
    header = struct.pack(">IIBBBBB", width, height, _DEPTH, _RGB, 0, 0, 0)
    return (SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
            + _chunk(b"IEND", b""))


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(encode_png(rgb))
