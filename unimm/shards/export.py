"""Exports read back from the shards: LLaVA instruction JSON and the UniMM-Chat release Parquet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from unimm.schema import Chat
from unimm.shards.read import iter_tar_samples
from unimm.shards.verify import IMAGE_EXTS, verified_manifest
from unimm.workdir import atomic_path, write_parquet_atomic

ROLE_TO_FROM = {"user": "human", "assistant": "gpt"}
UNIMM_PARQUET_SCHEMA = pl.Schema(
    {
        "ds_name": pl.Utf8,
        "image": pl.Binary,
        "conversation": pl.Utf8,
        "origin_dataset": pl.Utf8,
        "idx": pl.Int64,
        "image_path": pl.Utf8,
    }
)


def iter_shard_chats(shard_dir: Path) -> Iterator[tuple[Chat, bytes | None]]:
    """(Chat, image bytes or None) for every sample, in manifest shard order then tar order.

    Every shard is first checked against manifest.json (present, bytes, sha256): a truncated,
    missing or altered shard raises ShardVerifyError before anything is yielded, so an export
    never writes a partial or silently changed corpus."""
    man = verified_manifest(shard_dir)
    for e in man.shards:
        for _, members in iter_tar_samples(Path(shard_dir) / e.name):
            image = next((members[x] for x in sorted(IMAGE_EXTS) if x in members), None)
            yield Chat.model_validate_json(members["json"]), image


def conversations(chat: Chat) -> list[dict[str, str]]:
    """Turns as LLaVA `{"from": "human"|"gpt", "value"}` (the shard's "<image>\\n" prefix kept)."""
    return [{"from": ROLE_TO_FROM[t.role], "value": t.content} for t in chat.turns]


def llava_record(chat: Chat) -> dict:
    """One LLaVA instruction record; `image` is the path relative to the data root (else `<id>.jpg`)."""
    return {"id": chat.id, "image": chat.image_file or f"{chat.id}.jpg", "conversations": conversations(chat)}


def export_llava(shard_dir: Path, out: Path) -> int:
    """Write the LLaVA instruction JSON list; returns the number of records."""
    records = [llava_record(c) for c, _ in iter_shard_chats(shard_dir)]
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return len(records)


def export_unimm_parquet(shard_dir: Path, out: Path, ds_name: str = "unimm-chat") -> int:
    """Write the UniMM-Chat release layout (ds_name, image bytes or null, conversation JSON string,
    origin_dataset = the chat's sources joined by ',', idx, image_path); returns the row count."""
    rows = [
        {
            "ds_name": ds_name,
            "image": image,
            "conversation": json.dumps(conversations(chat), ensure_ascii=False),
            "origin_dataset": ",".join(chat.sources),
            "idx": i,
            "image_path": chat.image_file,
        }
        for i, (chat, image) in enumerate(iter_shard_chats(shard_dir))
    ]
    write_parquet_atomic(pl.DataFrame(rows, schema=UNIMM_PARQUET_SCHEMA), out)
    return len(rows)
