"""Image token costs: OpenAI's tile formula, Anthropic's w·h/750, else a described-image estimate.

Dimensions are read from the header of a data URL's PNG, JPEG, GIF or WebP payload; nothing is
fetched from the network.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct

# Enough base64 to reach a JPEG's SOF marker in practice (EXIF can push it out a few KiB).
_HEADER_B64_CHARS = 64 * 1024


def _decode_head(data_b64: str) -> bytes | None:
    head = data_b64[:_HEADER_B64_CHARS]
    head = head[: len(head) - len(head) % 4]
    try:
        return base64.b64decode(head, validate=False)
    except (binascii.Error, ValueError):
        return None


def data_url_payload(url: str) -> tuple[str | None, str] | None:
    """``(media_type, base64 payload)`` of a ``data:`` URL, or ``None``."""
    if not url.startswith("data:"):
        return None
    meta, sep, payload = url[5:].partition(",")
    if not sep or ";base64" not in meta:
        return None
    media = meta.split(";", 1)[0] or None
    return media, payload


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image header, or ``None`` if the format is not recognised."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return (w, h) if w and h else None
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return (w, h) if w and h else None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            w = int.from_bytes(data[24:27], "little") + 1
            h = int.from_bytes(data[27:30], "little") + 1
            return w, h
        if chunk == b"VP8L" and len(data) >= 25:
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
        return None
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return (w, h) if w and h else None
            i += 2 + length
    return None


def size_of_data_url(url: str) -> tuple[int, int] | None:
    parsed = data_url_payload(url)
    if parsed is None:
        return None
    head = _decode_head(parsed[1])
    return image_size(head) if head else None


def size_of_base64(data_b64: str) -> tuple[int, int] | None:
    head = _decode_head(data_b64)
    return image_size(head) if head else None


def openai_image_tokens(width: int, height: int, detail: str | None) -> int:
    """OpenAI's documented vision cost: 85 base + 170 per 512-px tile after scaling."""
    if detail == "low":
        return 85
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return 85 + 170 * tiles


def anthropic_image_tokens(width: int, height: int) -> int:
    """Anthropic's documented estimate w·h/750, after its resize to a 1568-px long edge."""
    w, h = float(width), float(height)
    if max(w, h) > 1568:
        s = 1568 / max(w, h)
        w, h = w * s, h * s
    return max(1, math.ceil(w * h / 750))


def described_image_tokens(base: int, per_char: float, description: str | None) -> int:
    """The fallback estimate: a base cost plus the description length times a rate."""
    return base + math.ceil(len(description or "") * per_char)
