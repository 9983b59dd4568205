"""thunlp/Muffin's TSV reader for UniMM-Chat, at 77abdf59edc7: `muffin/data/tsv_file.py`
(`TSVFile`: `<stem>.lineidx` from os.path.splitext, byte offsets, the TSV opened in text mode,
each line split on tabs and every cell stripped, at most LARGEST_TSV_SIZE rows),
`muffin/data/datasets.py` (`SingleDataSourceDataset`: row count parsed from the file name, rows
addressed across files by cumulative borders, the first cell dropped and the other six given to
the dataset's processor) and `muffin/data/data_processors.py` (`gather_data_files_by_glob`,
`unimmchat_processor`, `load_multimodal_conversation`: base64 UTF-8 JSON turns with roles
human/gpt only, `<image>` forced into the first turn and out of the others, base64 image opened
with PIL and converted to RGB)."""

from __future__ import annotations

import base64
import glob
import io
import json
import os.path as op
from typing import Any

from PIL import Image

LARGEST_TSV_SIZE = 500_000


class TSVFile:
    def __init__(self, tsv_file: str) -> None:
        self.tsv_file = tsv_file
        self.lineidx = op.splitext(tsv_file)[0] + ".lineidx"
        with open(self.lineidx) as fp:
            self._lineidx = [int(i.strip()) for i in fp.readlines()]
        self._fp = open(tsv_file)  # noqa: SIM115 - held open like Muffin's, closed by close()

    def close(self) -> None:
        self._fp.close()

    def __len__(self) -> int:
        assert len(self._lineidx) <= LARGEST_TSV_SIZE, f"more than {LARGEST_TSV_SIZE} rows"
        return len(self._lineidx)

    def __getitem__(self, idx: int) -> list[str]:
        self._fp.seek(self._lineidx[idx])
        return [s.strip() for s in self._fp.readline().split("\t")]


def gather_data_files_by_glob(root: str, pattern: str = "*.tsv") -> tuple[str, list[str]]:
    return root, [fullpath.split("/")[-1] for fullpath in glob.glob(f"{root}/{pattern}")]


def load_multimodal_conversation(text_b64: str, img_b64_buffer: str) -> tuple[Image.Image, list[dict]]:
    map_role = {"human": "human", "gpt": "gpt"}
    list_conv = json.loads(base64.b64decode(text_b64).decode("utf-8"))
    out = []
    for idx, sentence in enumerate(list_conv):
        value = sentence["value"]
        if idx == 0 and "<image>" not in value:
            value = f"<image>\n{value}"
        if idx != 0 and "<image>" in value:
            value = value.replace("<image>", "")
        out.append({"from": map_role[sentence["from"]], "value": value})
    image = Image.open(io.BytesIO(base64.b64decode(img_b64_buffer))).convert("RGB")
    return image, out


def unimmchat_processor(
    img_b64_buffer: str,
    text_b64: str,
    origin_dataset: str,
    origin_split: str,
    origin_split_inner_idx: str,
    img_path: str,
    intent: str,
) -> dict[str, Any]:
    assert intent in ("pretrain", "sft")
    image, out = load_multimodal_conversation(text_b64, img_b64_buffer)
    metainfo = {
        "origin_dataset": origin_dataset,
        "origin_split": origin_split,
        "origin_idx": origin_split_inner_idx,
        "image_id": img_path,
    }
    return {"image": image, "conversations": out, "idx": origin_split_inner_idx, "metainfo": metainfo}


class SingleDataSourceDataset:
    def __init__(self, ds_name: str, data_dir: str, tsv_filenames: list[str], intent: str = "sft") -> None:
        assert ds_name == "unimm-chat", "only the unimm-chat processor is reproduced"
        self.data_dir, self.filenames, self.intent = data_dir, tsv_filenames, intent
        self.sizes = []
        for filename in tsv_filenames:
            try:
                self.sizes.append(int(filename[:-4].split("-")[-1]))
            except ValueError:
                raise ValueError(f"TSV Data File {filename} is not valid") from None
        self.file_border_index = [0]
        for size in self.sizes:
            self.file_border_index.append(self.file_border_index[-1] + size)
        self.files: dict[int, TSVFile] = {}

    def __len__(self) -> int:
        return self.file_border_index[-1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        file_idx = next((b - 1 for b, border in enumerate(self.file_border_index) if index < border), None)
        if file_idx is None:
            raise ValueError(f"Index {index} out of range")
        row_idx = index - self.file_border_index[file_idx]
        if file_idx not in self.files:
            self.files[file_idx] = TSVFile(op.join(self.data_dir, self.filenames[file_idx]))
        ds_name, *values = self.files[file_idx][row_idx]
        return unimmchat_processor(*values, intent=self.intent)

    def close(self) -> None:
        for f in self.files.values():
            f.close()
