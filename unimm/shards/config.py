"""ShardConfig: shard naming and size bounds."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ShardConfig(BaseModel):
    """Shards are `<prefix>-%06d.tar`; a shard holds at most `maxcount` samples and `maxsize` bytes
    (the whole tar file, headers and end-of-archive padding included). A single sample larger than
    maxsize gets a shard of its own (a sample is never split)."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field("unimm", description="Shard file name prefix.")
    maxcount: int = Field(10000, ge=1)
    maxsize: int = Field(1 << 30, ge=10240, description="Bytes per shard file.")
    mtime: int = Field(0, ge=0, description="Fixed tar member mtime (reproducible shards).")
    fsync: bool = Field(
        True, description="fsync each shard before its rename (durable after a crash; costs disk time)."
    )

    @field_validator("prefix")
    @classmethod
    def _prefix_safe(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", v):
            raise ValueError("prefix may hold letters, digits, _ and - only")
        return v
