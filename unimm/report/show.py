"""Pick dialogues out of a shard folder for `unimm show` (by key, or a seeded random few) and say
which of their turns the grounding checks flag."""

from __future__ import annotations

from pathlib import Path

from unimm.errors import UnimmError
from unimm.report.read import Reservoir, Sample, find_shards, iter_samples
from unimm.schema import Chat


def pick_samples(shard_dir: Path, n: int = 3, seed: int = 0, ids: list[str] | None = None) -> list[Sample]:
    """`ids` given: those samples in the order asked (UnimmError naming any key not found).
    Otherwise `n` samples drawn uniformly with `seed` (same folder + seed = same picks), by key."""
    shards = find_shards(shard_dir)
    if ids:
        wanted = set(ids)
        found: dict[str, Sample] = {}
        for s in iter_samples(shards):
            if s.key in wanted and s.key not in found:
                found[s.key] = s
                if len(found) == len(wanted):
                    break  # no need to read the rest of the corpus
        missing = [k for k in ids if k not in found]
        if missing:
            raise UnimmError(
                f"{shard_dir}: no sample with key {', '.join(missing)} in {len(shards)} shard(s)"
            )
        return [found[k] for k in dict.fromkeys(ids)]
    picks: Reservoir[Sample] = Reservoir(n, seed)
    for s in iter_samples(shards):
        picks.offer(s)
    return sorted(picks.items, key=lambda s: s.key)


def turn_flags(chat: Chat) -> dict[int, str]:
    """Turn index -> why that assistant turn is flagged: its failed checks, or the judge's
    `unsupported` verdict (e.g. `unsupported: hallucinated_object:giraffe`). Unflagged turns and
    dialogues without a grounding report (older shards) have no entry."""
    if chat.grounding is None:
        return {}
    flags: dict[int, str] = {}
    for t in chat.grounding.turns:
        if not t.failures and t.judge != "unsupported":
            continue
        why = ", ".join(t.failures)
        if t.judge == "unsupported":
            judge = f"judge: {t.judge_reason}" if t.judge_reason else "judge"
            why = f"{why} ({judge})" if why else judge
        flags[t.turn] = f"unsupported: {why}"
    return flags
