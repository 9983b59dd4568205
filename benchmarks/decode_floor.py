"""Floor of unimm's ingest: decode each official file once into the msgspec Structs the ingesters
declare (the typed parse they start from), nothing else, one file after another in one process.
Its CPU time is what any ingest built on that parse spends at least; half of it is the best wall
time two cores could reach.

usage: python benchmarks/decode_floor.py DATA_ROOT   (the anchors' layout: coco/, vqav2/, vg/)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import msgspec

from unimm.ingest import coco, vg, vqa
from unimm.ingest.jsonio import decode_file

# file name -> the Struct type its ingester decodes it into
TYPES: dict[str, object] = {
    "captions_train2014.json": coco.CaptionsFile,
    "captions_val2014.json": coco.CaptionsFile,
    "v2_OpenEnded_mscoco_train2014_questions.json": vqa.QuestionsFile[vqa.Question],
    "v2_OpenEnded_mscoco_val2014_questions.json": vqa.QuestionsFile[vqa.Question],
    "v2_mscoco_train2014_annotations.json": vqa.VqaAnnotationsFile,
    "v2_mscoco_val2014_annotations.json": vqa.VqaAnnotationsFile,
    "image_data.json": list[vg.VgImage],
    "region_descriptions.json": list[vg.VgRegionImage],
    "question_answers.json": list[vg.VgQAImage],
}


def main() -> None:
    root = Path(sys.argv[1])
    total = 0.0
    for path in sorted(root.rglob("*.json")):
        typ = TYPES.get(path.name)
        if typ is None:
            continue
        t0 = time.process_time()
        doc = decode_file(path, typ)  # type: ignore[arg-type]
        spent = time.process_time() - t0
        total += spent
        del doc
        print(f"{path.relative_to(root)}: {spent:.2f} CPU-s", flush=True)
    print(f"total decode {total:.2f} CPU-s (msgspec {msgspec.__version__})")


if __name__ == "__main__":
    main()
