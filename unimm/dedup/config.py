"""DedupConfig: exact, in-dialogue and corpus-wide (MinHash LSH) deduplication settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DedupConfig(BaseModel):
    """Settings of `dedup_chats`. Bands x rows must equal num_perm; the LSH threshold of b bands of
    r rows is about (1/b)^(1/r) (0.54 for 32 x 4 with 128 permutations)."""

    model_config = ConfigDict(extra="forbid")

    min_turns: int = Field(
        2, ge=2, description="A dialogue left with fewer turns after turn dedup is rejected."
    )
    turn_near_threshold: float = Field(
        90.0,
        ge=0,
        le=100,
        description="rapidfuzz ratio of two normalised questions in one dialogue that makes the later pair a near duplicate.",
    )
    identical_answer_min_words: int = Field(
        4,
        ge=1,
        description="A repeated identical answer counts as a duplicate turn only from this many words (short answers like 'yes' repeat legitimately).",
    )
    minhash: bool = Field(True, description="Run the corpus-wide near-duplicate pass.")
    shingle: int = Field(3, ge=1, description="Word n-gram size of the MinHash shingles.")
    num_perm: int = Field(128, ge=8)
    bands: int = Field(32, ge=1)
    threshold: float = Field(
        0.7, ge=0, le=1, description="Estimated Jaccard at which a candidate pair is a near duplicate."
    )
    seed: int = 1
    max_bucket_window: int = Field(
        64,
        ge=1,
        description="Pairs are generated between members of one LSH bucket at most this far apart in id order (bounds giant buckets).",
    )
    method: Literal["oph", "kperm"] = Field(
        "oph",
        description="oph: one-permutation hashing with optimal densification (num_perm bins, hashes each shingle once); "
        "kperm: classic MinHash with num_perm hash functions.",
    )
    chunk_elements: int = Field(
        1 << 16, ge=1 << 10, description="kperm: shingles x permutations hashed per numpy step (cache-sized)."
    )

    @model_validator(mode="after")
    def _bands_divide(self) -> DedupConfig:
        if self.num_perm % self.bands:
            raise ValueError(f"bands ({self.bands}) must divide num_perm ({self.num_perm})")
        return self
