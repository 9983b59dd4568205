"""Fixed parts of the official files (headers, licences, code tables), copied from the releases.

Both the demo corpus and the benchmarks' full-scale generator use these, so every file they write opens
exactly like the file users download.
"""

from __future__ import annotations

from typing import Any

from unimm.keys import coco_file_name

COCO_INFO: dict[str, dict[str, Any]] = {
    "2014": {
        "description": "This is stable 1.0 version of the 2014 MS COCO dataset.",
        "url": "http://mscoco.org",
        "version": "1.0",
        "year": 2014,
        "contributor": "Microsoft COCO group",
        "date_created": "2015-01-27 09:11:52.357475",
    },
    "2017": {
        "description": "COCO 2017 Dataset",
        "url": "http://cocodataset.org",
        "version": "1.0",
        "year": 2017,
        "contributor": "COCO Consortium",
        "date_created": "2017/09/01",
    },
}

COCO_LICENSES: list[dict[str, Any]] = [
    {
        "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/",
        "id": 1,
        "name": "Attribution-NonCommercial-ShareAlike License",
    },
    {
        "url": "http://creativecommons.org/licenses/by-nc/2.0/",
        "id": 2,
        "name": "Attribution-NonCommercial License",
    },
    {
        "url": "http://creativecommons.org/licenses/by-nc-nd/2.0/",
        "id": 3,
        "name": "Attribution-NonCommercial-NoDerivs License",
    },
    {"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution License"},
    {
        "url": "http://creativecommons.org/licenses/by-sa/2.0/",
        "id": 5,
        "name": "Attribution-ShareAlike License",
    },
    {
        "url": "http://creativecommons.org/licenses/by-nd/2.0/",
        "id": 6,
        "name": "Attribution-NoDerivs License",
    },
    {"url": "http://flickr.com/commons/usage/", "id": 7, "name": "No known copyright restrictions"},
    {"url": "http://www.usa.gov/copyright.shtml", "id": 8, "name": "United States Government Work"},
]

VQA_INFO: dict[str, Any] = {
    "description": "This is v2.0 of the VQA dataset.",
    "url": "http://visualqa.org",
    "version": "2.0",
    "year": 2017,
    "contributor": "VQA Team",
    "date_created": "2017-04-26 17:07:13",
}
OKVQA_INFO: dict[str, Any] = {
    "year": 2019,
    "version": "1.0",
    "description": "This is v1.0 of the OK-VQA dataset.",
    "contributor": "OK-VQA Team",
    "url": "https://okvqa.allenai.org",
    "date_created": "2019-05-21",
}
VQA_LICENSE: dict[str, str] = {
    "url": "http://creativecommons.org/licenses/by/4.0/",
    "name": "Creative Commons Attribution 4.0 International License",
}

# OK-VQA annotations carry this table: question_type codes -> knowledge category.
OKVQA_QUESTION_TYPES: dict[str, str] = {
    "one": "Vehicles and Transportation",
    "two": "Brands, Companies and Products",
    "three": "Objects, Material and Clothing",
    "four": "Sports and Recreation",
    "five": "Cooking and Food",
    "six": "Geography, History, Language and Culture",
    "seven": "People and Everyday life",
    "eight": "Plants and Animals",
    "nine": "Science and Technology",
    "ten": "Weather and Climate",
    "other": "Other",
}

NUMBER_WORDS: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
)


def coco_url(coco_id: int, split: str) -> str:
    return f"http://images.cocodataset.org/{split}/{coco_file_name(coco_id, split)}"


def vqa_questions_header(data_subtype: str) -> dict[str, Any]:
    """Everything of a VQAv2 questions file except the `questions` list, in the official key order."""
    return {
        "info": VQA_INFO,
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "license": VQA_LICENSE,
        "data_subtype": data_subtype,
    }


def vqa_annotations_header(data_subtype: str) -> dict[str, Any]:
    """Everything of a VQAv2 annotations file before the `annotations` list."""
    return {"info": VQA_INFO, "license": VQA_LICENSE, "data_subtype": data_subtype}


def okvqa_questions_header(data_subtype: str) -> dict[str, Any]:
    return {
        "info": OKVQA_INFO,
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "license": VQA_LICENSE,
        "data_subtype": data_subtype,
    }


def okvqa_annotations_header(data_subtype: str) -> dict[str, Any]:
    return {"info": OKVQA_INFO, "license": VQA_LICENSE, "data_subtype": data_subtype}


def vg_image_url(vg_id: int) -> str:
    folder = "VG_100K_2" if vg_id >= 2_400_000 else "VG_100K"
    return f"https://cs.stanford.edu/people/rak248/{folder}/{vg_id}.jpg"
