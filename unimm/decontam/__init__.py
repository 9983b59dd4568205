"""Decontamination against evaluation sets.

A dialogue is dropped when its image is an evaluation image, or when one of its user questions
overlaps an evaluation question: it shares a word n-gram (default 8) of normalised text with one,
or, for an evaluation question shorter than n words, equals it after normalisation (VQA questions
are mostly 5-8 words, so an n-gram test alone would miss nearly all of them).

Evaluation files are read as officially distributed; the kind is detected from the content:
- image list: plain text, one COCO id (`391895`), image key (`coco_000000391895`, `vg_12`) or
  COCO file name (`COCO_val2014_000000391895.jpg`) per line; `#` comments and blank lines skipped;
- `vqa`: VQAv2 / OK-VQA question files `{"questions": [{"image_id", "question", "question_id"}]}`;
- `aokvqa`: A-OKVQA `[{"image_id", "question", ...}]`;
- `karpathy`: `dataset_coco.json` `{"images": [{"split", "cocoid", ...}]}`; only split == "test".

The JSON files are decoded by the ingesters' msgspec decoders into their Structs (only the
question and its image are read), so an evaluation file is read exactly as a training file is.
"""

from unimm.lazy import exports

__all__, __getattr__ = exports(
    __name__,
    {
        "unimm.decontam.config": ["DecontamConfig", "EvalFile"],
        "unimm.decontam.core": ["DecontamReport", "DecontamResult", "decontaminate", "load_eval_file"],
    },
)
