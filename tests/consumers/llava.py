"""haotian-liu/LLaVA's training data reader: `llava/train/train.py` at 0034661529f5 —
`LazySupervisedDataset` (json.load of the list; `Image.open(os.path.join(image_folder,
record["image"])).convert("RGB")` for records with an `image` key), `preprocess_multimodal` (the
`<image>` token moved to the front of its turn) and the conversation templates' role check
(`roles = {"human": ..., "gpt": ...}`, a leading non-human turn skipped, then strict alternation).
The model side (`llava_arch.prepare_inputs_labels_for_multimodal`) consumes one image per
`<image>` token, so a record must carry exactly as many tokens as images."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from PIL import Image

DEFAULT_IMAGE_TOKEN = "<image>"
ROLES = {"human": "USER", "gpt": "ASSISTANT"}


def preprocess_multimodal(conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    """The turn holding `<image>` gets it as its first line, the rest of the text stripped."""
    for sentence in conversation:
        if DEFAULT_IMAGE_TOKEN in sentence["value"]:
            text = sentence["value"].replace(DEFAULT_IMAGE_TOKEN, "").strip()
            sentence["value"] = (DEFAULT_IMAGE_TOKEN + "\n" + text).strip()
    return conversation


def check_roles(conversation: list[dict[str, str]]) -> None:
    """What preprocess_v1/llama_2/mpt assert: known roles, human first (else skipped), alternating."""
    if ROLES[conversation[0]["from"]] != ROLES["human"]:
        conversation = conversation[1:]
    for j, sentence in enumerate(conversation):
        role = ROLES[sentence["from"]]  # KeyError on any other role, as in LLaVA
        assert role == ("USER", "ASSISTANT")[j % 2], f"turn {j} is {role}"


class LazySupervisedDataset:
    """`LazySupervisedDataset(data_path, tokenizer, data_args)` without the tokenizer: yields the
    RGB image (or None) and the conversation LLaVA would tokenize."""

    def __init__(self, data_path: str | os.PathLike[str], image_folder: str | os.PathLike[str]) -> None:
        with open(data_path) as f:
            self.list_data_dict: list[dict[str, Any]] = json.load(f)
        self.image_folder = str(image_folder)

    def __len__(self) -> int:
        return len(self.list_data_dict)

    @property
    def lengths(self) -> list[int]:
        """The length-grouped sampler's view: every record needs `conversations` with `value`s."""
        return [
            sum(len(c["value"].split()) for c in s["conversations"]) + (128 if "image" in s else 0)
            for s in self.list_data_dict
        ]

    def __getitem__(self, i: int) -> dict[str, Any]:
        source = self.list_data_dict[i]
        conversation = copy.deepcopy(source["conversations"])
        image = None
        if "image" in source:
            image_file = source["image"]
            image = Image.open(os.path.join(self.image_folder, image_file)).convert("RGB")
            conversation = preprocess_multimodal(conversation)
        check_roles(conversation)
        tokens = sum(c["value"].count(DEFAULT_IMAGE_TOKEN) for c in conversation)
        assert tokens == (image is not None), f"record {i}: {tokens} {DEFAULT_IMAGE_TOKEN} tokens"
        return {"image": image, "conversations": conversation}
