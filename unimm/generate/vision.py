"""Vision in the loop: the picture travels with its annotations to a vision-language model.

With `generate.vision` (or the judge's `filter.judge_llm.vision`) each request's last user message
becomes a list of two parts, the way vLLM's OpenAI-compatible server takes images:
`{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,..."}}` and the rendered
annotations as `{"type": "text", ...}`. The picture is the record's file under the image root
(the first of the names its sources know it by), re-encoded as JPEG with its longest side at most
`vision_max_side` (aspect kept, never upscaled).

What enters a request id is the sha256 of the original file's bytes and the resize settings, so a
changed picture or setting is a new request, never a stale cached answer. Reading and hashing
happen when the requests are planned; decoding and encoding only when a request is actually sent
(a resumed run re-encodes nothing it has an answer for), in a worker thread, with at most
`concurrency` encoded pictures in memory. A record whose picture is missing gets a failure
`image_missing` naming the paths tried; one that does not decode, `image_undecodable` naming the
file and the decoder's complaint.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from unimm.errors import ConfigError
from unimm.generate.backends import PermanentError
from unimm.generate.config import GenerateConfig
from unimm.schema import MergedImage

Message = dict[str, Any]
DATA_URL_PREFIX = "data:image/jpeg;base64,"
# What decoding a broken or hostile file raises in Pillow (truncated data, unknown format,
# a decompression bomb, a mode JPEG cannot hold).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

# Qwen2-VL / Qwen2.5-VL image tokens, from `smart_resize` in qwen-vl-utils
# (github.com/QwenLM/Qwen2.5-VL, qwen-vl-utils/src/qwen_vl_utils/vision_process.py) and the
# Qwen2-VL image processor in transformers: 14-pixel ViT patches merged 2x2, so each side is
# rounded to a multiple of 28 and every 28x28 pixels become one token; the pixel count is kept
# within [4, 16384] tokens' worth; <|vision_start|> and <|vision_end|> wrap the image's tokens.
QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 4 * 28 * 28
QWEN_MAX_PIXELS = 16384 * 28 * 28
QWEN_WRAPPER_TOKENS = 2


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longest side is `max_side`, aspect kept; unchanged when it
    already fits (never upscaled)."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    if width >= height:
        return max_side, max(1, round(height * scale))
    return max(1, round(width * scale)), max_side


def qwen_image_tokens(width: int, height: int) -> int:
    """Tokens Qwen2-VL / Qwen2.5-VL spends on one image of this size (see QWEN_* above)."""
    h_bar = max(QWEN_FACTOR, round(height / QWEN_FACTOR) * QWEN_FACTOR)
    w_bar = max(QWEN_FACTOR, round(width / QWEN_FACTOR) * QWEN_FACTOR)
    if h_bar * w_bar > QWEN_MAX_PIXELS:
        beta = math.sqrt(height * width / QWEN_MAX_PIXELS)
        h_bar = max(QWEN_FACTOR, math.floor(height / beta / QWEN_FACTOR) * QWEN_FACTOR)
        w_bar = max(QWEN_FACTOR, math.floor(width / beta / QWEN_FACTOR) * QWEN_FACTOR)
    elif h_bar * w_bar < QWEN_MIN_PIXELS:
        beta = math.sqrt(QWEN_MIN_PIXELS / (height * width))
        h_bar = math.ceil(height * beta / QWEN_FACTOR) * QWEN_FACTOR
        w_bar = math.ceil(width * beta / QWEN_FACTOR) * QWEN_FACTOR
    return (h_bar // QWEN_FACTOR) * (w_bar // QWEN_FACTOR) + QWEN_WRAPPER_TOKENS


def sent_image_tokens(record: MergedImage, cfg: GenerateConfig) -> tuple[int, bool]:
    """(Qwen2.5-VL tokens of the record's picture as it is sent, whether its size was known).
    A record without a recorded size is counted at the worst case, a square of the longest side."""
    if record.width and record.height:
        return qwen_image_tokens(*fit_within(record.width, record.height, cfg.vision_max_side)), True
    return qwen_image_tokens(cfg.vision_max_side, cfg.vision_max_side), False


def encode_jpeg(data: bytes, max_side: int, quality: int) -> tuple[bytes, tuple[int, int]]:
    """The picture as JPEG bytes with its longest side at most `max_side`, and that size.

    Pixels stay as stored: no EXIF rotation is applied, because the annotations' boxes (COCO,
    Visual Genome) are in the stored pixel grid. Raises one of _DECODE_ERRORS when `data` is not
    a complete image."""
    with Image.open(io.BytesIO(data)) as img:
        size = fit_within(img.width, img.height, max_side)
        if size != img.size and img.format == "JPEG":
            img.draft("RGB", size)  # decode at a reduced DCT scale when that still covers `size`
        img.load()
        # JPEG holds no alpha or palette; the VLM's processor converts to RGB anyway.
        rgb = img.convert("RGB")
    if rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=quality)
    return out.getvalue(), size


@dataclass(frozen=True)
class Picture:
    """A record's picture as planned: its file and the sha256 of its bytes."""

    name: str  # relative to the image root, as the sources name it
    path: Path
    sha256: str

    def request_part(self, cfg: GenerateConfig) -> dict[str, object]:
        """What of the picture enters a request id: its bytes' hash and how it is sent."""
        return {"sha256": self.sha256, "max_side": cfg.vision_max_side, "quality": cfg.vision_jpeg_quality}

    def data_url(self, cfg: GenerateConfig) -> str:
        """The picture as sent: a JPEG data URL. PermanentError `image_undecodable` when the file
        does not decode, `image_changed` when its bytes are no longer those planned."""
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise PermanentError("image_missing", f"{self.path}: {e.strerror or e}") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise PermanentError("image_changed", f"{self.path} changed after the run was planned; run again")
        try:
            jpeg, _ = encode_jpeg(data, cfg.vision_max_side, cfg.vision_jpeg_quality)
        except _DECODE_ERRORS as e:
            raise PermanentError("image_undecodable", f"{self.path}: {type(e).__name__}: {e}") from None
        return DATA_URL_PREFIX + base64.b64encode(jpeg).decode("ascii")


@dataclass(frozen=True)
class Missing:
    """Why a record has no picture: a reason code and the paths tried or the error met."""

    reason: str  # image_missing | image_unreadable
    detail: str


def image_root_for(cfg: GenerateConfig, image_root: Path | None) -> Path | None:
    """The image root vision needs (None when vision is off); ConfigError when it is missing."""
    if not cfg.vision:
        return None
    if image_root is None:
        raise ConfigError("generate.vision needs the folder the images are under (image_root / data_root)")
    return Path(image_root)


def _locate(root: Path, key: str, names: Sequence[str]) -> Picture | Missing:
    from unimm.shards.writer import resolve_image  # the shards' rule of which file is the image

    name = resolve_image(root, names)
    if name is None:
        tried = ", ".join(str(root / n) for n in names) or "the record names no image file"
        return Missing("image_missing", f"{key}: no picture under {root} (tried {tried})")
    path = root / name
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        return Missing("image_unreadable", f"{key}: {path}: {e.strerror or e}")
    return Picture(name, path, h.hexdigest())


def locate_pictures(root: Path, records: Sequence[MergedImage]) -> list[Picture | Missing]:
    """Each record's picture (its file found under `root` and hashed) or why it has none.
    Files are read by a few threads: hashing releases the GIL, and the disk likes company."""
    from unimm.merge import file_names

    jobs = [(r.image_key, file_names(r)) for r in records]
    if len(jobs) < 8:
        return [_locate(root, k, n) for k, n in jobs]
    with ThreadPoolExecutor(min(8, (os.cpu_count() or 1) * 2)) as pool:
        return list(pool.map(lambda j: _locate(root, *j), jobs))


def images_fingerprint(root: Path, names_by_key: Mapping[str, Sequence[str]]) -> str:
    """Hash of which file is each image's picture and its size and mtime (one stat per file): a
    pipeline step key that changes when a picture is added, removed or rewritten, without
    reading every picture when nothing changed."""
    from unimm.shards.writer import resolve_image

    h = hashlib.sha256(str(root.resolve()).encode())
    for key in sorted(names_by_key):
        name = resolve_image(root, names_by_key[key])
        h.update(f"\0{key}\0{name}".encode())
        if name is not None:
            st = os.stat(root / name)
            h.update(f"\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


def vision_messages(
    prefix: list[Message], text: str, picture: Picture, cfg: GenerateConfig
) -> Callable[[], list[Message]]:
    """The messages of one vision request, built when it is sent: the shared (text-only) prefix,
    then the user turn holding the picture and the annotations. Image first, as Qwen2.5-VL and
    LLaVA were trained; the prefix stays identical across records, so servers still cache it."""

    def build() -> list[Message]:
        content = [
            {"type": "image_url", "image_url": {"url": picture.data_url(cfg)}},
            {"type": "text", "text": text},
        ]
        return [*prefix, {"role": "user", "content": content}]

    return build
