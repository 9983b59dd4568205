"""The one vocabulary of counts every pipeline step reports, per unit and summed per step.

`input` records entered, `output` records left, `dropped` the records that did not, by reason
code (`input == output + sum(dropped)` for the steps that only drop). `extra` holds a step's own
tallies (requests sent, cache hits, turn pairs removed...). The build report, the stage markers
and the shard manifest all store exactly this model, so nothing has to guess a spelling. Time is
not a count: it lives in the markers and the build report, never in the (reproducible) manifest.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field


class StepCounts(BaseModel):
    """What one step (or one unit of it) did."""

    model_config = ConfigDict(extra="forbid")

    input: int = Field(0, ge=0, description="Records that entered the step.")
    output: int = Field(0, ge=0, description="Records the step wrote for the next one.")
    dropped: dict[str, int] = Field(
        default_factory=dict, description="Records that did not pass, by reason code (sorted)."
    )
    extra: dict[str, int] = Field(default_factory=dict, description="The step's own tallies.")
    units: int = Field(1, ge=0, description="Units of work (sources, partitions) summed here.")

    @property
    def rejected(self) -> int:
        """Records dropped, all reasons together."""
        return sum(self.dropped.values())

    @classmethod
    def total(cls, parts: Iterable[StepCounts]) -> StepCounts:
        """The sum of units' counts (a step's total over its partitions)."""
        out = cls(units=0)
        dropped: dict[str, int] = {}
        extra: dict[str, int] = {}
        for p in parts:
            out.input += p.input
            out.output += p.output
            out.units += p.units
            for k, v in p.dropped.items():
                dropped[k] = dropped.get(k, 0) + v
            for k, v in p.extra.items():
                extra[k] = extra.get(k, 0) + v
        out.dropped = dict(sorted(dropped.items()))
        out.extra = dict(sorted(extra.items()))
        return out


def rejected_by_reason(steps: dict[str, StepCounts]) -> dict[str, int]:
    """Every step's dropped records by reason code, summed (the manifest's and card's view)."""
    return StepCounts.total(steps.values()).dropped
