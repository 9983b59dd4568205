"""The one pipeline runner: `unimm build` and every single-stage command (`unimm ingest|merge|
generate|filter|shards`) are `run_pipeline` with a different `only` / `until`.

For each run of consecutive steps with the same scope (the sources; the corpus; the partitions,
where generate -> filter -> dedup_sign run as one chain per partition) the runner lists the units,
derives each unit's fingerprint from its step's key and its upstream units' fingerprints, and
hands the units whose markers do not match to the executor. Steps before the selected ones must
be done for this config (a clear error otherwise); steps after them are left alone. A unit that
could not finish stops the run after its group, so nothing downstream publishes a corpus missing
it; rerunning the same command retries it.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from unimm.errors import ConfigError
from unimm.generate import prompt_fingerprint
from unimm.generate.dispatch import TRANSIENT_REASONS_PREFIX
from unimm.generate.prompts import prompt_set_for, record_budget
from unimm.grounding.vocab import vocabulary_fingerprint
from unimm.pipeline.counts import StepCounts, rejected_by_reason
from unimm.pipeline.executors import Task, TaskError, make_executor
from unimm.pipeline.layout import Layout
from unimm.pipeline.step import Context, Derived, Outcome, Scope, Step, step_totals
from unimm.pipeline.steps import BY_NAME, PIPELINE, STAGES
from unimm.pipeline.steps.generate import record_budgets
from unimm.redact import is_secret_key
from unimm.stagecache import code_fingerprint, fingerprint
from unimm.workdir import atomic_path

STEP_NAMES = [s.name for s in PIPELINE]
STAGE_NAMES = list(STAGES)


class StageReport(BaseModel):
    """One step of a run: ran (some unit ran), cached (every unit was), or incomplete."""

    stage: str
    status: str
    seconds: float
    units: int
    counts: StepCounts


class BuildReport(BaseModel):
    stages: list[StageReport]
    out: str | None
    dialogues: int
    rejected_by_reason: dict[str, int]
    incomplete: str | None = None  # why the run stopped short (rerunning it retries)


def select_steps(only: str | None, until: str | None) -> tuple[list[str], list[str]]:
    """(steps that must already be done, steps to run) for `--only X` or `--until X`, where X is
    a stage (`filter`: filter..decontaminate) or a single step."""

    def span(name: str) -> list[str]:
        if name in STAGES:
            return STAGES[name]
        if name in STEP_NAMES:
            return [name]
        raise ConfigError(f"no stage or step {name!r}: choose from {', '.join(STAGE_NAMES + STEP_NAMES)}")

    if only is not None and until is not None:
        raise ConfigError("--only and --until contradict each other: pass one")
    if only is not None:
        chosen = span(only)
        first = STEP_NAMES.index(chosen[0])
        return STEP_NAMES[:first], chosen
    last = STEP_NAMES.index(span(until or "shards")[-1])
    return [], STEP_NAMES[: last + 1]


def derive(cfg: BaseModel) -> Derived:
    """Load every file the config names for generation and filtering (prompt sets, vocabulary, the
    judge's model) and derive the step keys from them; raises the error a step would raise hours
    later."""
    gen = cfg.generate
    if gen.backend != "template":
        gen.resolved_model()
        record_budget(gen, prompt_set_for(gen))
    filter_cfg = cfg.filter
    if not filter_cfg.prompt_text and gen.backend != "template":
        # A dialogue that repeats the instructions it was given is a prompt echo: tell the filter
        # what those instructions were.
        filter_cfg = filter_cfg.model_copy(update={"prompt_text": prompt_set_for(gen).system})
    if filter_cfg.judge:
        filter_cfg.judge_llm.inherit(gen).llm_config().resolved_model()
    from unimm.filter.judged import judge_fingerprint_for

    return Derived(
        prompt_fp=prompt_fingerprint(gen),
        filter_cfg=filter_cfg,
        judge_fp=judge_fingerprint_for(filter_cfg, gen),
        vocab_fp=vocabulary_fingerprint(filter_cfg.vocabulary),
        rules_fp=code_fingerprint("unimm.filter", "unimm.grounding"),
    )


def save_config(cfg: BaseModel, layout: Layout) -> None:
    """The work dir remembers the config of its last run (secrets left out): a later command
    without --config continues from it, so stages run one by one agree on every setting."""

    def drop_secrets(obj: object) -> object:
        if isinstance(obj, dict):
            return {k: drop_secrets(v) for k, v in obj.items() if not is_secret_key(str(k))}
        if isinstance(obj, list):
            return [drop_secrets(v) for v in obj]
        return obj

    with atomic_path(layout.config) as tmp:
        tmp.write_text(json.dumps(drop_secrets(cfg.model_dump(mode="json")), indent=2) + "\n")


def _groups(steps: list[Step]) -> list[list[Step]]:
    """Consecutive steps of one scope run as a chain per unit (corpus steps one by one)."""
    groups: list[list[Step]] = []
    for s in steps:
        chained = groups and s.scope is groups[-1][0].scope and not groups[-1][-1].ends_chain
        if chained and s.scope is not Scope.CORPUS:
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def _upstream(
    step: Step, unit: str, prev: Step | None, prev_units: list[str], fps: dict[str, str]
) -> list[str]:
    if prev is None:
        return []
    if prev.scope is step.scope and step.scope is not Scope.CORPUS:
        return [fps[f"{prev.name}/{unit}"]]
    return [fps[f"{prev.name}/{u}"] for u in prev_units]


def _not_done(step: Step, unit: str, ctx: Context) -> ConfigError:
    stage = next(name for name, steps in STAGES.items() if step.name in steps)
    return ConfigError(
        f"step {step.name} ({unit}) has not run with this config in {ctx.work}: run `unimm {stage}` "
        f"first with the same settings (or `unimm build --until {stage}`)"
    )


def _incomplete_message(outcomes: list[Outcome], layout: Layout, cfg: BaseModel) -> str:
    """What is missing after an outage, where it stands and what to do about it."""
    failed = sum(o.counts.extra.get("transient_failures", 0) for o in outcomes)
    reasons: Counter = Counter()
    first = ""
    for o in outcomes:
        df = pl.read_parquet(layout.failures(o.unit), columns=["reason", "detail"]).filter(
            pl.any_horizontal(pl.col("reason").str.starts_with(p) for p in TRANSIENT_REASONS_PREFIX)
        )
        reasons.update(df["reason"].to_list())
        first = first or (df["detail"][0] if df.height else "")
    servers = ", ".join(cfg.generate.base_urls) or cfg.generate.backend
    by_reason = ", ".join(f"{k} x{v}" for k, v in reasons.most_common())
    return (
        f"generation incomplete: {failed} request(s) in {len(outcomes)} partition(s) failed because "
        f"the server ({servers}) could not answer ({by_reason}; first: {first}). Every answer received "
        "is cached: run the same command again to send only the missing requests."
    )


def run_pipeline(
    cfg: BaseModel,
    work: Path,
    *,
    only: str | None = None,
    until: str | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
) -> BuildReport:
    """Run the selected steps of the pipeline (`only` one stage/step, or everything `until` one);
    returns what ran, what was cached, and the counts."""
    required, selected = select_steps(only, until)
    layout = Layout(work)
    steps = [s for s in PIPELINE if s.name in required or s.name in selected]
    # The served model is asked for once, before any work, and recorded in the config that keys
    # the steps, enters the manifest and is remembered by the work dir.
    if any(STEP_NAMES.index(s.name) >= STEP_NAMES.index("generate") for s in steps):
        cfg = cfg.model_copy(update={"generate": cfg.generate.with_served_model(log)})
        derived = derive(cfg)
    else:  # ingest and merge read nothing derived: no prompt set, model or vocabulary is needed
        derived = Derived("", cfg.filter, None, "", "")
    ctx = Context(cfg=cfg, work=Path(work), out=Path(cfg.out), derived=derived, progress=progress)
    for s in steps:
        if s.name in selected:
            s.check(ctx)
    saved = False
    ex = cfg.executor
    executor = make_executor(ex.kind, ex.workers, ex.memory_gb, ex.ray_address)

    reports: list[StageReport] = []
    fps: dict[str, str] = {}
    prev: Step | None = None
    prev_units: list[str] = []
    for group in _groups(steps):
        units = group[0].units(ctx)
        if any(s.name == "generate" for s in group):
            ctx = dataclasses.replace(ctx, budgets=record_budgets(ctx, units))
        for s in group:
            for u in units:
                up = _upstream(s, u, prev, prev_units, fps)
                fps[f"{s.name}/{u}"] = fingerprint(s.name, u, s.key(ctx, u), up)
            prev, prev_units = s, units
        ctx = dataclasses.replace(ctx, fps=dict(fps))

        outcomes: dict[str, list[Outcome]] = {s.name: [] for s in group}
        tasks: list[Task] = []
        for u in units:
            chain: list[str] = []
            for s in group:
                fp = fps[f"{s.name}/{u}"]
                if s.name in required:
                    if s.cached(ctx, u, fp) is None:
                        raise _not_done(s, u, ctx)
                    continue
                if s.name not in selected:
                    continue
                done = None if chain else s.cached(ctx, u, fp)
                if done is not None:
                    outcomes[s.name].append(Outcome(s.name, u, "cached", done.counts))
                else:
                    chain.append(s.name)
            if chain:
                tasks.append(Task(chain, u, BY_NAME[chain[0]].memory(ctx, u)))
        if not saved:
            # Only a run whose earlier steps are in place becomes the work dir's config.
            save_config(cfg, layout)
            saved = True
        if tasks:
            names = ", ".join(dict.fromkeys(n for t in tasks for n in t.steps))
            log(f"[bold]{names}[/] running: {len(tasks)} unit(s)")
        error = None
        first = BY_NAME[tasks[0].steps[0]] if tasks else None
        spread = first.worth_processes(ctx, [t.unit for t in tasks]) if first else False
        uneven = any(BY_NAME[n].uneven_units for t in tasks for n in t.steps)
        for result in executor.run(ctx, tasks, spread, uneven):
            done_outcomes = result.outcomes if isinstance(result, TaskError) else result
            for o in done_outcomes:
                outcomes[o.step].append(o)
            if isinstance(result, TaskError) and error is None:
                error = result.error
        if error is not None:
            raise error
        for s in group:
            if s.name in selected:
                reports.append(_stage_report(s.name, outcomes[s.name]))
        incomplete = [o for os_ in outcomes.values() for o in os_ if o.status == "incomplete"]
        if incomplete:
            # The later steps would publish a corpus missing these dialogues: stop here.
            report = _report(reports, steps, None, ctx)
            report.incomplete = _incomplete_message(incomplete, layout, cfg)
            return report
    return _report(reports, steps, ctx.out if "shards" in selected else None, ctx)


def _stage_report(name: str, outcomes: list[Outcome]) -> StageReport:
    statuses = {o.status for o in outcomes}
    status = "incomplete" if "incomplete" in statuses else "ran" if "ran" in statuses else "cached"
    return StageReport(
        stage=name,
        status=status,
        seconds=round(sum(o.seconds for o in outcomes), 2),
        units=len(outcomes),
        counts=StepCounts.total(o.counts for o in outcomes),
    )


def _report(reports: list[StageReport], steps: list[Step], out: Path | None, ctx: Context) -> BuildReport:
    """What ran, and the rejections of every step done so far (this run's or earlier ones')."""
    from unimm.shards.manifest import read_manifest

    # What was written, read from the manifest (cached or not), never what was planned.
    n = read_manifest(out).total_samples if out is not None else 0
    return BuildReport(
        stages=reports,
        out=str(out) if out else None,
        dialogues=n,
        rejected_by_reason=rejected_by_reason(step_totals(ctx, steps)),
    )
