"""LLaVA instruction JSON plus the image folder it points into.

haotian-liu/LLaVA `llava/train/train.py` (`LazySupervisedDataset`) reads `--data_path` with
`json.load` (a list of {"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]}) and
opens `Image.open(os.path.join(data_args.image_folder, record["image"])).convert("RGB")` for
every record that has an `image` key; "<image>" marks the picture in the first human turn. So
`image` here is a path relative to the image folder this export writes (`--image_folder` for
LLaVA), never the source's own path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unimm.export.output import ExportResult, owned_dir
from unimm.export.samples import ExportSample, image_relpath, iter_shard_samples
from unimm.export.turns import conversations
from unimm.workdir import atomic_path


def default_images_dir(out: Path) -> Path:
    """`<out stem>_images/` beside the JSON (llava.json -> llava_images/): two exports in one
    folder never share, and so never replace, each other's images."""
    out = Path(out)
    return out.with_name(f"{out.stem}_images")


def llava_record(sample: ExportSample) -> dict[str, Any]:
    """One LLaVA record; without an image it is text-only (no `image` key, no placeholder)."""
    chat = sample.chat
    if sample.image is None:
        return {"id": chat.id, "conversations": conversations(chat, with_image=False)}
    return {"id": chat.id, "image": image_relpath(sample), "conversations": conversations(chat)}


def export_llava(shard_dir: Path, out: Path, images: Path | None = None) -> ExportResult:
    """Write the LLaVA JSON list at `out` and every picture once under `images` (default
    default_images_dir(out)), so `os.path.join(images, record["image"])` opens each record's
    picture. Both appear together or not at all; records and pictures are streamed, never held."""
    out = Path(out)
    images_dir = Path(images) if images is not None else default_images_dir(out)
    samples = iter_shard_samples(shard_dir)  # verified here, before any folder is made
    records = 0
    written: set[str] = set()
    with (
        owned_dir(images_dir, "llava-images") as img_tmp,
        atomic_path(out) as json_tmp,
        open(json_tmp, "w", encoding="utf-8") as f,
    ):
        f.write("[")
        for sample in samples:
            record = llava_record(sample)
            # chats about one picture share its file; the first sample's bytes are kept
            if sample.image is not None and (rel := record["image"]) not in written:
                path = img_tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(sample.image)
                written.add(rel)
            f.write(("\n" if records == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
            records += 1
        f.write("\n]\n")
    return ExportResult(format="llava", out=out, records=records, images=len(written), images_dir=images_dir)
