"""Read a corpus unimm did not write (or its own shards) into `AuditDialogue`s.

One reader per format, all validated through pydantic models at the boundary:

- `llava`: LLaVA instruction JSON (llava_instruct_150k.json, complex_reasoning_77k.json, ...): a
  list of {"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]}, read as
  haotian-liu/LLaVA's `LazySupervisedDataset` reads it (`<image>` marks the picture in a turn).
- `unimm-chat`: the Yirany/UniMM-Chat release: Parquet with columns ds_name, image (HF Image
  struct {bytes, path}), conversation (a JSON string of [{"from", "value"}]), origin_dataset, idx,
  image_path; also JSON/JSONL of the same rows. The COCO id comes from `image_path` (else
  `image.path`); `idx` is a row index inside the origin dataset, not an image id.
- `shards`: unimm's own WebDataset shards (`manifest.json` + `*.tar`, `<key>.json` = `Chat`).

Every error names the file, the record and the field (InputError, exit status 2).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unimm.errors import InputError
from unimm.keys import coco_id_from_file_name, coco_key, vg_key
from unimm.placeholder import remove_placeholders
from unimm.schema import KEY_PATTERN, Turn

AuditFormat = Literal["llava", "unimm-chat", "shards"]
FORMATS: tuple[str, ...] = get_args(AuditFormat)
ROLES = {"human": "user", "gpt": "assistant"}


class AuditDialogue(BaseModel):
    """One dialogue of the audited corpus, in unimm's terms: roles user/assistant, no `<image>`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The corpus's own id, or <file>:<row> where the corpus has none.")
    image_key: str = Field(description="Canonical image key (unimm.keys), e.g. coco_000000033471.")
    image_file: str | None = Field(None, description="The image as the corpus names it.")
    turns: list[Turn]
    format: AuditFormat


class _Message(BaseModel):
    """One LLaVA/UniMM-Chat conversation entry; extra keys (LLaVA-1.5 mixes carry some) are ignored."""

    role: str = Field(alias="from")
    value: str


class _LlavaRecord(BaseModel):
    id: str | int
    image: str = Field(min_length=1)
    conversations: list[_Message] = Field(min_length=2)


class _UnimmChatRecord(BaseModel):
    conversation: str | list[_Message]
    image_path: str | None = None
    image: dict[str, Any] | None = None
    ds_name: str | None = None
    origin_dataset: str | None = None
    idx: int | None = None


def image_key_from_name(name: str | None) -> str | None:
    """Image key of an image file name: unimm's own `<key>.jpg` (its exports and shards), any of
    COCO's spellings (2014 `COCO_train2014_<id>.jpg`, 2017 `<id:012d>.jpg`) or a Visual Genome
    `VG_100K*/<id>.jpg`, with or without folders; None when it names neither."""
    if not name:
        return None
    parts = name.replace("\\", "/").split("/")
    base = parts[-1]
    stem = base.rsplit(".", 1)[0]
    if base != stem and KEY_PATTERN.match(stem):
        return stem
    if len(parts) > 1 and parts[-2].startswith("VG_100K") and stem.isdigit():
        return vg_key(int(stem))
    coco_id = coco_id_from_file_name(base)
    return coco_key(coco_id) if coco_id is not None else None


def to_turns(messages: list[_Message], file: Path, record: int | str, field: str) -> list[Turn]:
    """human/gpt messages -> user/assistant Turns with `<image>` removed."""
    turns = []
    for j, m in enumerate(messages):
        role = ROLES.get(m.role)
        if role is None:
            raise InputError(
                file,
                f"role {m.role!r} is neither 'human' nor 'gpt'",
                record=record,
                field=f"{field}[{j}].from",
            )
        turns.append(Turn(role=role, content=remove_placeholders(m.value)))  # type: ignore[arg-type]
    return turns


def _invalid(file: Path, record: int | str, e: ValidationError, prefix: str = "") -> InputError:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    loc = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", loc)  # conversations.3.from -> conversations[3].from
    return InputError(file, err["msg"], record=record, field=prefix + loc if loc else None)


# ------------------------------------------------------------------------------------------------
# format detection
# ------------------------------------------------------------------------------------------------
def _load_json_rows(path: Path) -> list[Any]:
    """Every record of a JSON list or a JSONL file; InputError when it is neither."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for i, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(
                        path, f"invalid JSON on line {i + 1}: {e.msg}", record=len(rows)
                    ) from None
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, f"invalid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from None
    if not isinstance(data, list):
        raise InputError(path, f"expected a JSON list of records, found a {type(data).__name__}")
    return data


def _kind_of_row(row: Any) -> str | None:
    if isinstance(row, dict):
        if "conversations" in row:
            return "llava"
        if "conversation" in row:
            return "unimm-chat"
    return None


def _parquet_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def detect_format(path: Path) -> AuditFormat:
    """The corpus format from what the path holds; InputError naming the path when none fits."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        if (path / "manifest.json").is_file() or any(path.glob("*.tar")):
            return "shards"
        if any(path.glob("*.parquet")):
            return "unimm-chat"
        raise InputError(path, "unknown corpus format: a folder without manifest.json, *.tar or *.parquet")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        cols = pl.read_parquet_schema(path)
        if "conversation" in cols:
            return "unimm-chat"
        raise InputError(path, "unknown corpus format: Parquet without a 'conversation' column (UniMM-Chat)")
    if suffix in (".json", ".jsonl"):
        rows = _load_json_rows(path)
        # a record lacking the field is the reader's error to report, not an unknown format
        kinds = {k for r in rows[:100] if (k := _kind_of_row(r)) is not None}
        if len(kinds) == 1:
            return kinds.pop()  # type: ignore[return-value]
        if kinds:
            raise InputError(
                path, "unknown corpus format: records mix LLaVA and UniMM-Chat fields; pass --format"
            )
        raise InputError(
            path,
            "unknown corpus format: records have neither 'conversations' (LLaVA) nor 'conversation' (UniMM-Chat)",
            record=0 if rows else None,
        )
    raise InputError(
        path,
        f"unknown corpus format {suffix or '(no suffix)'!r}: expected .json, .jsonl, .parquet or a shard folder",
    )


# ------------------------------------------------------------------------------------------------
# readers
# ------------------------------------------------------------------------------------------------
def read_llava(path: Path) -> list[AuditDialogue]:
    """LLaVA instruction JSON (or JSONL) -> dialogues; the image must be a COCO file name."""
    out = []
    for i, row in enumerate(_load_json_rows(path)):
        try:
            rec = _LlavaRecord.model_validate(row)
        except ValidationError as e:
            raise _invalid(path, i, e) from None
        key = image_key_from_name(rec.image)
        if key is None:
            raise InputError(path, f"{rec.image!r} is not a COCO image file name", record=i, field="image")
        out.append(
            AuditDialogue(
                id=str(rec.id),
                image_key=key,
                image_file=rec.image,
                turns=to_turns(rec.conversations, path, i, "conversations"),
                format="llava",
            )
        )
    return out


def _unimm_chat_dialogue(path: Path, record: int | str, row: dict[str, Any], rid: str) -> AuditDialogue:
    try:
        rec = _UnimmChatRecord.model_validate(row)
    except ValidationError as e:
        raise _invalid(path, record, e) from None
    messages = rec.conversation
    if isinstance(messages, str):
        try:
            messages = [_Message.model_validate(m) for m in json.loads(messages)]
        except (json.JSONDecodeError, TypeError) as e:
            raise InputError(
                path, f"not a JSON list of turns: {e}", record=record, field="conversation"
            ) from None
        except ValidationError as e:
            raise _invalid(path, record, e, prefix="conversation.") from None
    if len(messages) < 2:
        raise InputError(path, "fewer than 2 turns", record=record, field="conversation")
    name = rec.image_path or (rec.image or {}).get("path")
    key = image_key_from_name(name)
    if key is None:
        field = "image_path" if rec.image_path or not rec.image else "image.path"
        raise InputError(path, f"{name!r} names no COCO image", record=record, field=field)
    return AuditDialogue(
        id=rid,
        image_key=key,
        image_file=name,
        turns=to_turns(messages, path, record, "conversation"),
        format="unimm-chat",
    )


def _image_path_gaps(path: Path, names: pl.Schema) -> bool:
    """Whether some row of the Parquet file lacks image_path (the column missing or null)."""
    if "image_path" not in names:
        return True
    return bool(pl.scan_parquet(path).select(pl.col("image_path").null_count()).collect().item())


def _unimm_chat_rows(path: Path) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    if path.is_dir() or path.suffix.lower() == ".parquet":
        for p in _parquet_files(path):
            names = pl.read_parquet_schema(p)
            if "conversation" not in names:
                raise InputError(p, "missing column", field="conversation")
            cols: list[str | pl.Expr] = [
                c for c in ("conversation", "image_path", "ds_name", "origin_dataset", "idx") if c in names
            ]
            # the image column (bytes, ~1.6 GB per release file) is read only where image_path
            # cannot name the picture, and then only for image.path
            if "image" in names and _image_path_gaps(p, names):
                cols.append(pl.struct(pl.col("image").struct.field("path")).alias("image"))
            for i, row in enumerate(pl.scan_parquet(p).select(cols).collect().iter_rows(named=True)):
                yield p, i, row
    else:
        for i, row in enumerate(_load_json_rows(path)):
            yield path, i, row


def read_unimm_chat(path: Path) -> list[AuditDialogue]:
    """UniMM-Chat release rows (Parquet file or folder of them, JSON, JSONL) -> dialogues."""
    out = []
    for p, i, row in _unimm_chat_rows(Path(path)):
        if not isinstance(row, dict):
            raise InputError(p, f"expected an object, found {type(row).__name__}", record=i)
        out.append(_unimm_chat_dialogue(p, i, row, f"{p.stem}:{i}"))
    return out


def read_shards(path: Path) -> list[AuditDialogue]:
    """unimm WebDataset shards -> dialogues (read with the webdataset library)."""
    from unimm.report.read import find_shards, iter_samples  # webdataset pulls in torch: import late

    return [
        AuditDialogue(
            id=s.chat.id,
            image_key=s.chat.image_key,
            image_file=s.chat.image_file,
            turns=[t.model_copy(update={"content": remove_placeholders(t.content)}) for t in s.chat.turns],
            format="shards",
        )
        for s in iter_samples(find_shards(path))
    ]


READERS = {"llava": read_llava, "unimm-chat": read_unimm_chat, "shards": read_shards}


def read_corpus(path: Path, fmt: str | None = None) -> tuple[AuditFormat, list[AuditDialogue]]:
    """Detect (or take) the format and read every dialogue; InputError on any bad record."""
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise InputError(path, f"unknown --format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not path.exists():
        raise InputError(path, "no such file or folder")
    kind: AuditFormat = fmt or detect_format(path)  # type: ignore[assignment]
    dialogues = READERS[kind](path)
    if not dialogues:
        raise InputError(path, f"no dialogues found (format {kind})")
    return kind, dialogues
