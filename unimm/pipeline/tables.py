"""Reading and writing the dialogue tables steps pass to each other (Chat rows)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import ValidationError

from unimm.errors import InputError
from unimm.schema import Chat
from unimm.tables import chats_to_frame, frame_to_chats
from unimm.workdir import write_parquet_atomic


def read_chats(path: Path) -> list[Chat]:
    """Validated dialogues of one table; InputError naming the file and field otherwise."""
    try:
        return frame_to_chats(pl.read_parquet(path))
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(path, err["msg"], field=".".join(map(str, err["loc"]))) from None


def write_chats(chats: list[Chat], path: Path) -> Path:
    return write_parquet_atomic(chats_to_frame(chats), path)


def rows(path: Path) -> int:
    """Row count from the Parquet footer (no data read)."""
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())
