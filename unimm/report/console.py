"""Terminal output with rich: the stats summary and `unimm show`'s dialogues."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from unimm.report.manifest import ManifestInfo
from unimm.report.read import Sample
from unimm.report.show import turn_flags
from unimm.report.summary import Count, Distribution, GroundingSummary, Summary
from unimm.schema import IMAGE_PLACEHOLDER, GroundingReport

BAR_WIDTH = 30


def _n(v: float | int | None, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.{digits}f}"
    return f"{int(v):,}"


def _dist_row(t: Table, name: str, d: Distribution) -> None:
    t.add_row(name, _n(d.n), _n(d.mean), _n(d.median), _n(d.min), _n(d.max), _n(d.p90), _n(d.missing))


def _histogram(title: str, d: Distribution) -> Table:
    t = Table(title=title, show_header=False, box=None, padding=(0, 1))
    t.add_column(justify="right")
    t.add_column(justify="right")
    t.add_column()
    peak = max((b.count for b in d.bins), default=0) or 1
    for b in d.bins:
        t.add_row(b.label, f"{b.count:,}", "█" * round(BAR_WIDTH * b.count / peak))
    return t


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _counts(title: str, counts: list[Count], header: str, top: int = 20, unit: str = "dialogues") -> Table:
    t = Table(title=title)
    t.add_column(header)
    t.add_column(unit, justify="right")
    for c in counts[:top]:
        t.add_row(c.label, f"{c.count:,}")
    if len(counts) > top:
        t.add_row(f"... {len(counts) - top} more", f"{sum(c.count for c in counts[top:]):,}")
    return t


def _steps(m: ManifestInfo) -> Table:
    """The manifest's per-step counts: records in, out and dropped by each pipeline step."""
    t = Table(title="pipeline steps (manifest)")
    for col in ("step", "input", "output", "dropped"):
        t.add_column(col, justify="left" if col == "step" else "right")
    for name, c in m.steps.items():
        t.add_row(name, _n(c.input), _n(c.output), _n(c.rejected))
    return t


def print_summary(s: Summary, console: Console | None = None) -> None:
    """The stats summary as rich tables and text histograms."""
    con = console or Console()
    m = s.manifest
    head = Table(title=f"corpus: {s.shard_dir}", show_header=True)
    head.add_column("")
    head.add_column("in the shards", justify="right")
    head.add_column("manifest", justify="right")
    head.add_row("shards", _n(s.shards), _n(m.num_shards) if m else "-")
    head.add_row("dialogues", _n(s.dialogues), _n(m.samples) if m else "-")
    head.add_row("bytes", _n(s.shard_bytes), _n(m.bytes) if m else "-")
    head.add_row("with image", _n(s.with_image), "")
    head.add_row("turns (Q/A exchanges)", _n(s.turns), "")
    if m is not None:
        head.add_row("dialogues into dedup", "", _n(m.dialogues_in))
        head.add_row("dedup rejects", "", _n(m.dedup_rejects))
        head.add_row("dup rate", "", f"{s.dup_rate:.2%}" if s.dup_rate is not None else "-")
    con.print(head)
    if m is None:
        con.print(
            "[dim]no manifest.json beside the shards: totals, rejection reasons and dup rate omitted[/]"
        )
    else:
        for w in m.warnings:
            con.print(f"[yellow]{w}[/]")
        if m.steps:
            con.print(_steps(m))

    dist = Table(title="distributions")
    for col in ("measure", "n", "mean", "median", "min", "max", "p90", "missing"):
        dist.add_column(col, justify="left" if col == "measure" else "right")
    _dist_row(dist, "turns per dialogue", s.turns_per_dialogue)
    _dist_row(dist, "question words", s.question_words)
    _dist_row(dist, "answer words", s.answer_words)
    _dist_row(dist, "grounding score", s.grounding)
    con.print(dist)
    con.print(_histogram("turns per dialogue", s.turns_per_dialogue))
    con.print(_histogram("answer length (words)", s.answer_words))
    con.print(_histogram("question length (words)", s.question_words))
    if s.grounding.n:
        con.print(_histogram("grounding score", s.grounding))
    else:
        con.print("[dim]no grounding scores in the shards[/]")

    _print_grounding(s.grounding_report, con)

    con.print(_counts("sources per dialogue", s.sources_per_dialogue, "sources"))
    con.print(_counts("dialogues by source", s.by_source, "source"))
    con.print(_counts("source combinations", s.combinations, "combination"))
    if m is not None and m.rejection_reasons:
        reasons = [Count(label=k, count=v) for k, v in m.rejection_reasons.items()]
        con.print(_counts("rejection reasons (manifest)", reasons, "reason", top=30))

    gen = Table(title="generator")
    for col in ("backend", "model", "prompt version", "prompt fingerprint", "dialogues"):
        gen.add_column(col, justify="right" if col == "dialogues" else "left")
    for g in s.generators:
        gen.add_row(g.backend, g.model, g.prompt_version, g.prompt_fingerprint, f"{g.dialogues:,}")
    con.print(gen)


def _print_grounding(g: GroundingSummary, con: Console) -> None:
    """Coverage, corpus CHAIR, judge verdicts and failure reasons of the grounding reports."""
    if not g.dialogues:
        con.print("[dim]no grounding reports in the shards (built before grounding checks)[/]")
    else:
        t = Table(title="grounding checks", show_header=False)
        t.add_column("")
        t.add_column("", justify="right")
        t.add_row("dialogues with a grounding report", _n(g.dialogues))
        t.add_row("coverage (mean share of assistant turns checked)", _pct(g.coverage.mean))
        t.add_row("dialogues with coverage > 0", _pct(g.covered))
        t.add_row("objects mentioned / hallucinated", f"{g.mentioned:,} / {g.hallucinated:,}")
        t.add_row("CHAIR-i (hallucinated / mentioned objects)", _pct(g.chair_i))
        t.add_row("CHAIR-s (dialogues with a hallucination)", _pct(g.chair_s))
        con.print(t)
        if g.judge:
            con.print(_counts("judge verdicts", g.judge, "verdict", unit="turns"))
        if g.failures:
            con.print(_counts("failed checks (shipped dialogues)", g.failures, "reason", unit="turns"))
        if g.hallucinated_objects:
            con.print(_counts("hallucinated objects", g.hallucinated_objects, "object", top=15, unit="turns"))
    if g.reject_reasons:
        con.print(_counts("grounding rejects (manifest)", g.reject_reasons, "reason"))


def _grounding_meta(r: GroundingReport | None) -> tuple[str, str]:
    """(coverage, CHAIR-i) cells of a dialogue's meta table."""
    if r is None:
        return "-", "-"
    checked = sum(bool(t.checks) for t in r.turns)
    coverage = f"{r.coverage:.0%} ({checked}/{len(r.turns)} assistant turns checked)"
    chair = "-" if r.chair_i is None else f"{r.chair_i:.3f} ({r.hallucinated}/{r.mentioned} objects)"
    return coverage, chair


def _image_line(sample: Sample) -> str:
    if sample.image is None:
        return "no image in the shard"
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(sample.image)) as im:
            dims = f"{im.width}x{im.height} {im.format}"
    except Exception:  # still show the dialogue; the image problem is stated, not hidden
        dims = "does not decode"
    return f"{sample.key}.{sample.image_ext}: {dims}, {len(sample.image):,} bytes"


def dialogue_panel(sample: Sample) -> Panel:
    """One dialogue: key, sources, grounding, generator, image, then every turn (assistant turns that
    fail a grounding check marked in red below them)."""
    c = sample.chat
    g = c.generator
    meta = Table.grid(padding=(0, 2))
    meta.add_column(style="dim")
    meta.add_column()
    meta.add_row("shard", sample.shard)
    meta.add_row("image", _image_line(sample) + (f"  ({c.image_file})" if c.image_file else ""))
    meta.add_row("sources", ", ".join(c.sources))
    meta.add_row("grounding", _n(c.grounding_score, 3))
    coverage, chair = _grounding_meta(c.grounding)
    meta.add_row("coverage", coverage)
    meta.add_row("CHAIR-i", chair)
    meta.add_row("generator", f"{g.backend} / {g.model} / prompt {g.prompt_version} ({g.prompt_fingerprint})")
    turns = Table.grid(padding=(0, 1))
    turns.add_column(no_wrap=True)
    turns.add_column(ratio=1)
    flags = turn_flags(c)
    for i, t in enumerate(c.turns):
        role = Text("User", style="bold cyan") if t.role == "user" else Text("Assistant", style="bold green")
        body = Text()
        content = t.content
        if content.startswith(IMAGE_PLACEHOLDER):
            body.append(IMAGE_PLACEHOLDER, style="dim magenta")
            content = content[len(IMAGE_PLACEHOLDER) :].lstrip("\n")
            body.append(" ")
        body.append(content)
        turns.add_row(role, body)
        if i in flags:
            turns.add_row("", Text(f"✗ {flags[i]}", style="bold red"))
    return Panel(Group(meta, Text(""), turns), title=f"[bold]{sample.key}[/]", title_align="left")


def print_dialogues(samples: list[Sample], console: Console | None = None) -> None:
    """Print each sample as a panel."""
    con = console or Console()
    for s in samples:
        con.print(dialogue_panel(s))
