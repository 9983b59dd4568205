"""The step contract: what every pipeline step declares, and the one base that runs a unit of it.

A step declares
- `name` and `scope`: its unit of work is a source, a merged partition or the whole corpus;
- `config(ctx)`: the part of the validated `PipelineConfig` it reads (its config model);
- `key(ctx, unit)`: what besides its upstream fingerprints decides its output (config, files, code);
- `outputs(ctx, unit)`: the paths under the work-dir `Layout` it writes;
- `process(ctx, unit)`: the work, returning a `StepResult`: records in and out, `Reject`s with
  their reasons (written by the base), other drops by reason, and the step's own tallies.

`Step.execute` is the only place that times a unit, counts it in the one vocabulary
(`StepCounts`), writes its rejects and its marker, and skips it when its marker already holds the
same fingerprint. A unit that cannot finish (`complete=False`, e.g. requests the server never
answered) keeps its outputs but gets no marker, so the next run does it again.
"""

from __future__ import annotations

import abc
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import ClassVar, NamedTuple

from pydantic import BaseModel

from unimm.filter.reasons import count_reasons
from unimm.gcpolicy import rare_collections
from unimm.pipeline.counts import StepCounts
from unimm.pipeline.layout import Layout
from unimm.schema import Reject
from unimm.stagecache import StageMarker, is_done, mark_done
from unimm.tables import rejects_to_frame
from unimm.workdir import write_parquet_atomic


class Scope(str, Enum):
    SOURCE = "source"
    PARTITION = "partition"
    CORPUS = "corpus"


class Derived(NamedTuple):
    """What later steps derive from the config, computed (and so validated) once, up front."""

    prompt_fp: str
    filter_cfg: BaseModel  # FilterConfig with the prompt text the echo check needs
    judge_fp: str | None
    vocab_fp: str
    rules_fp: str


@dataclass(frozen=True)
class Context:
    """Everything a unit of work needs; picklable, so it travels to worker processes and Ray tasks."""

    cfg: BaseModel  # unimm.config.PipelineConfig
    work: Path
    out: Path | None
    derived: Derived
    progress: bool = False
    # partition id -> records to generate for it (only with generate.limit)
    budgets: dict[str, int] = field(default_factory=dict)
    # "step/unit" -> fingerprint, of every unit planned so far
    fps: dict[str, str] = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return Layout(self.work)


class StepResult(NamedTuple):
    """What one unit of a step did. `rejects` are written by the base to `layout.rejects`."""

    input: int
    output: int
    rejects: list[Reject] = []
    dropped: dict[str, int] = {}  # drops that are not Rejects (generation failures), by reason code
    extra: dict[str, int] = {}
    complete: bool = True


def step_totals(ctx: Context, steps: list[Step]) -> dict[str, StepCounts]:
    """Each finished step's counts, summed over its units, from their markers."""
    out: dict[str, StepCounts] = {}
    for step in steps:
        markers = [ctx.layout.marker(step.name, u) for u in step.units(ctx)]
        out[step.name] = StepCounts.total(
            StageMarker.model_validate_json(m.read_text()).counts for m in markers if m.exists()
        )
    return out


class Outcome(NamedTuple):
    """How a unit ended: `ran`, `cached` or `incomplete`, with its counts."""

    step: str
    unit: str
    status: str
    counts: StepCounts
    seconds: float = 0.0


class Step(abc.ABC):
    """Base of every pipeline step (see the module docstring)."""

    name: ClassVar[str]
    scope: ClassVar[Scope]
    writes_rejects: ClassVar[bool] = False
    reads: ClassVar[str | None] = None  # the step whose dialogue tables this one reads
    ends_chain: ClassVar[bool] = False  # the next step of the same scope starts a new chain
    uneven_units: ClassVar[bool] = False  # its units differ several-fold in size (see executors)

    def check(self, ctx: Context) -> None:
        """Load and check what the config names before any step runs (InputError, ConfigError);
        most steps name nothing to check."""
        return None

    def config(self, ctx: Context) -> object:
        """The config this step reads (part of its key)."""
        return None

    def units(self, ctx: Context) -> list[str]:
        """The units of work, in order."""
        if self.scope is Scope.SOURCE:
            return list(ctx.cfg.sources)  # type: ignore[attr-defined]
        if self.scope is Scope.PARTITION:
            return ctx.layout.partitions()
        return ["corpus"]

    def key(self, ctx: Context, unit: str) -> list[object]:
        """What decides this unit's output besides its upstream units' fingerprints."""
        return [self.config(ctx)]

    @abc.abstractmethod
    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        """The paths this unit writes under the layout (its marker lists them)."""

    def worth_processes(self, ctx: Context, units: list[str]) -> bool:
        """Whether these units are heavy enough to pay for worker processes (a spawned process
        costs about a second to import the stack)."""
        return True

    def memory(self, ctx: Context, unit: str) -> int:
        """Estimated peak bytes of one unit (0: small); executors admit units within a budget."""
        return 0

    @abc.abstractmethod
    def process(self, ctx: Context, unit: str) -> StepResult:
        """The unit's work."""

    # -- the one place a unit is run, counted and marked ------------------------------------------
    def cached(self, ctx: Context, unit: str, fp: str) -> StageMarker | None:
        return is_done(ctx.layout.marker(self.name, unit), fp)

    def execute(self, ctx: Context, unit: str, fp: str) -> Outcome:
        """Run `unit` unless its marker holds `fp`; count it, write its rejects and its marker."""
        done = self.cached(ctx, unit, fp)
        if done is not None:
            return Outcome(self.name, unit, "cached", done.counts)
        t0 = time.perf_counter()
        with rare_collections():
            res = self.process(ctx, unit)
        outputs = self.outputs(ctx, unit)
        if self.writes_rejects:
            path = ctx.layout.rejects(self.name, unit)
            write_parquet_atomic(rejects_to_frame(res.rejects), path)
            outputs = [*outputs, path]
        dropped = Counter(count_reasons(res.rejects))
        dropped.update(res.dropped)
        counts = StepCounts(
            input=res.input,
            output=res.output,
            dropped=dict(sorted(dropped.items())),
            extra=dict(res.extra),
        )
        seconds = round(time.perf_counter() - t0, 3)
        if not res.complete:
            return Outcome(self.name, unit, "incomplete", counts, seconds)
        mark_done(
            ctx.layout.marker(self.name, unit),
            StageMarker(
                stage=f"{self.name}/{unit}",
                fingerprint=fp,
                outputs=[str(o) for o in outputs],
                counts=counts,
                seconds=seconds,
            ),
        )
        return Outcome(self.name, unit, "ran", counts, seconds)
