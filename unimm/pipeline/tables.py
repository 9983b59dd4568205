"""Reading and writing the dialogue tables steps pass to each other (Chat rows)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import ValidationError

from unimm import handoff
from unimm.errors import InputError
from unimm.schema import Chat
from unimm.tables import chats_to_frame, frame_to_chats
from unimm.workdir import write_parquet_atomic


def read_chats(path: Path) -> list[Chat]:
    """Validated dialogues of one table; InputError naming the file and field otherwise. The
    table this process last wrote or read is not parsed again (`unimm.handoff`)."""
    cached = handoff.kept("chats", path)
    if cached is not None:
        return cached
    try:
        chats = frame_to_chats(pl.read_parquet(path))
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(path, err["msg"], field=".".join(map(str, err["loc"]))) from None
    handoff.keep("chats", path, chats)
    return chats


def write_chats(chats: list[Chat], path: Path) -> Path:
    """Write one dialogue table (atomically), kept for the unit's next step (`unimm.handoff`)."""
    write_parquet_atomic(chats_to_frame(chats), path)
    handoff.keep("chats", path, list(chats))
    return path


def rows(path: Path) -> int:
    """Row count from the Parquet footer (no data read)."""
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())
