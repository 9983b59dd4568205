"""Learning-rate schedule: linear warmup, then cosine decay to `min_lr_ratio` of the peak."""

from __future__ import annotations

import math
from collections.abc import Callable


def warmup_cosine(steps: int, warmup: int, min_lr_ratio: float) -> Callable[[int], float]:
    """Multiplier of the peak lr for the step about to run (0-based count of finished steps)."""

    def mult(done: int) -> float:
        if done < warmup:
            return (done + 1) / warmup
        progress = min(1.0, (done - warmup) / max(1, steps - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return mult
