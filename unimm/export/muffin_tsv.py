"""Muffin's TSV layout, as thunlp/Muffin trains UniMM-Chat from it (`muffin/data/`).

Muffin's `SingleDataSourceDataset(ds_name, data_dir, filenames)` takes every `*.tsv` of a folder,
reads the row count from the name (`int(filename[:-4].split('-')[-1])`, so `<stem>-<N>.tsv`),
and its `TSVFile` seeks each row through `<stem>.lineidx` (one byte offset per line, the file
opened in text mode, the line split on tabs and each cell stripped). Seven cells per row:

1. `ds_name`: the corpus name ("unimm-chat"; Muffin picks its processor by the dataset's name);
2. the image, base64 of the original bytes (`Image.open(BytesIO(b64decode(x))).convert('RGB')`);
3. the conversation, base64 of UTF-8 JSON [{"from": "human"|"gpt", "value"}], "<image>\\n"
   opening the first human turn;
4. `origin_dataset`: annotation sources, comma-joined ("coco,vqav2");
5. `origin_split`: the shard the row was read from (unimm-000000.tar);
6. `origin_split_inner_idx`: the row's index in the whole export (unique across files);
7. `img_path`: the picture's path in its source release (coco/train2014/COCO_train2014_....jpg).

Files are named like the release's (`tsv/unimm_chat_0_10000-10000.tsv`):
`unimm_chat_<first>_<end>-<rows>.tsv` with `rows_per_file` rows at most (Muffin's TSVFile
refuses more than 500,000). Muffin cannot read a row without an image, so image-less shards are
refused.
"""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

from unimm.errors import InputError
from unimm.export.output import ExportResult, owned_dir
from unimm.export.samples import ExportSample, iter_shard_samples
from unimm.export.turns import conversations

# The seven cells of a row, in order, with their types (the dataset card declares them: the
# files have no header row).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("ds_name", "string"),
    ("image", "string"),
    ("conversation", "string"),
    ("origin_dataset", "string"),
    ("origin_split", "string"),
    ("origin_split_inner_idx", "int64"),
    ("img_path", "string"),
)
DS_NAME = "unimm-chat"
ROWS_PER_FILE = 10_000  # the release's files hold 10,000 rows each
MAX_ROWS_PER_FILE = 500_000  # Muffin's LARGEST_TSV_SIZE
# TSVFile splits on tabs, reads lines in text mode (\r ends one too) and strips every cell
_UNSAFE = ("\t", "\n", "\r")


def tsv_name(first: int, rows: int) -> str:
    """`unimm_chat_<first>_<end>-<rows>.tsv`: the suffix after the last `-` is the row count."""
    return f"unimm_chat_{first}_{first + rows}-{rows}.tsv"


def _cell(sample: ExportSample, field: str, value: str) -> str:
    if any(c in value for c in _UNSAFE) or value != value.strip():
        raise InputError(
            sample.shard,
            f"{value!r} cannot be a Muffin TSV cell (tab, line break or edge whitespace)",
            record=sample.chat.id,
            field=field,
        )
    return value


def tsv_line(sample: ExportSample, idx: int, ds_name: str = DS_NAME) -> bytes:
    """One TSV row (7 cells, newline-terminated) for the sample at export index `idx`."""
    chat = sample.chat
    if sample.image is None:
        raise InputError(
            sample.shard,
            "Muffin needs an image in every row; this shard set has none (run `unimm shards` with --image-root)",
            record=chat.id,
        )
    conv = json.dumps(conversations(chat), ensure_ascii=False).encode("utf-8")
    cells = [
        _cell(sample, "ds_name", ds_name),
        base64.b64encode(sample.image).decode("ascii"),
        base64.b64encode(conv).decode("ascii"),
        _cell(sample, "origin_dataset", ",".join(chat.sources)),
        _cell(sample, "origin_split", sample.shard),
        str(idx),
        _cell(sample, "img_path", chat.image_file or ""),
    ]
    return ("\t".join(cells) + "\n").encode("utf-8")


def _write_file(folder: Path, first: int, lines: list[bytes]) -> None:
    """`<stem>.tsv` + `<stem>.lineidx` (the byte offset of each line, one per line)."""
    name = tsv_name(first, len(lines))
    offsets = itertools.accumulate((len(line) for line in lines[:-1]), initial=0)
    (folder / name).write_bytes(b"".join(lines))
    (folder / name).with_suffix(".lineidx").write_text("".join(f"{o}\n" for o in offsets), encoding="ascii")


def export_muffin_tsv(
    shard_dir: Path, out: Path, ds_name: str = DS_NAME, rows_per_file: int = ROWS_PER_FILE
) -> ExportResult:
    """Write the folder `out` (Muffin's data_dir for "unimm-chat"): TSV files + their .lineidx,
    replaced whole and atomically; one file's rows are held at a time, never the corpus."""
    if not 0 < rows_per_file <= MAX_ROWS_PER_FILE:
        raise ValueError(f"rows_per_file must be in 1..{MAX_ROWS_PER_FILE}, not {rows_per_file}")
    samples = iter_shard_samples(shard_dir)  # verified before anything is written
    lines = (tsv_line(s, i, ds_name) for i, s in enumerate(samples))
    records = 0
    with owned_dir(out, "muffin-tsv") as tmp:
        while chunk := list(itertools.islice(lines, rows_per_file)):
            _write_file(tmp, records, chunk)
            records += len(chunk)
    return ExportResult(format="muffin-tsv", out=Path(out), records=records, images=records)
