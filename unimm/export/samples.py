"""Samples read back from verified shards, and the one path every export gives each picture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from unimm.errors import InputError
from unimm.schema import KEY_PATTERN, Chat
from unimm.shards.read import iter_tar_samples
from unimm.shards.verify import IMAGE_EXTS, verified_manifest


class ExportSample(NamedTuple):
    """A shard sample as exports read it: the Chat (shard form, "<image>\\n" first), image bytes, origin."""

    chat: Chat
    image: bytes | None
    image_ext: str | None  # the shard member's extension (jpg, png, webp); None without an image
    shard: str  # file name of the shard it was read from


def _read(shard_dir: Path, shard_names: list[str]) -> Iterator[ExportSample]:
    for name in shard_names:
        for _, members in iter_tar_samples(shard_dir / name):
            ext = next((x for x in sorted(IMAGE_EXTS) if x in members), None)
            image = members[ext] if ext is not None else None
            yield ExportSample(Chat.model_validate_json(members["json"]), image, ext, name)


def iter_shard_samples(shard_dir: Path) -> Iterator[ExportSample]:
    """Every sample in manifest shard order, then tar order.

    The shards are checked against manifest.json (present, bytes, sha256) when this is called,
    not at the first `next()`: a truncated, missing or altered shard raises ShardVerifyError
    before an export has created anything."""
    shard_dir = Path(shard_dir)
    man = verified_manifest(shard_dir)
    return _read(shard_dir, [e.name for e in man.shards])


def iter_shard_chats(shard_dir: Path) -> Iterator[tuple[Chat, bytes | None]]:
    """(Chat, image bytes or None) for every sample; verified first, like iter_shard_samples."""
    return ((s.chat, s.image) for s in iter_shard_samples(shard_dir))


def image_relpath(sample: ExportSample) -> str:
    """`coco/coco_000000014732.jpg`: the picture's path inside an export's image folder.

    Derived from the image key alone, so one picture gets one file whichever release
    (coco/train2014/COCO_train2014_..., coco/train2017/..., VG_100K/...) the chat named, and
    chats sharing a picture share the file. The key's namespace is the folder."""
    key = sample.chat.image_key
    # the key becomes a path: refuse anything that could leave the image folder
    if not KEY_PATTERN.match(key):
        raise InputError(sample.shard, f"image_key {key!r} is not a safe key", record=sample.chat.id)
    if sample.image_ext is None:
        raise ValueError(f"sample {sample.chat.id!r} has no image")
    return f"{key.split('_', 1)[0]}/{key}.{sample.image_ext}"
