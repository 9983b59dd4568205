"""The unit's handoff: a table written or read is not parsed again while the file is unchanged."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from unimm import handoff
from unimm.pipeline.tables import read_chats, write_chats
from unimm.tables import chats_to_frame

from .test_filter import GOOD, make_chat


def test_written_table_is_handed_on_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "chats-00000.parquet"
    chats = [make_chat("coco_1", GOOD), make_chat("coco_2", GOOD)]
    try:
        write_chats(chats, path)
        first = read_chats(path)
        assert first == chats and all(a is b for a, b in zip(first, chats, strict=True))
        first.pop()  # a reader's list is its own
        assert len(read_chats(path)) == 2
        # Another writer replaces the file: its content is read, not the kept list.
        chats_to_frame([make_chat("coco_3", GOOD)]).write_parquet(path)
        assert [c.id for c in read_chats(path)] == ["coco_3"]
        handoff.forget()
        assert handoff.kept("chats", path) is None
        assert [c.id for c in read_chats(path)] == ["coco_3"]  # parsed from the file again
        assert pl.read_parquet(path).height == 1
    finally:
        handoff.forget()
