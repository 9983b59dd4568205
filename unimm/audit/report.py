"""The audit's report.html (self-contained, in the house style of unimm.report.html) and its
short rich summary on the console."""

from __future__ import annotations

from collections import Counter
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from rich.console import Console
from rich.table import Table

from unimm.audit.readers import AuditDialogue
from unimm.report import plots
from unimm.report.html import CSS, _fmt, _img, _table, thumbnail_b64
from unimm.report.summary import Count, float_distribution
from unimm.schema import MergedImage, TurnGrounding
from unimm.workdir import atomic_path

if TYPE_CHECKING:
    from unimm.audit.run import AuditOptions, AuditSummary

EXTRA_CSS = """
.turn.fail{background:#fdecea;border-left:3px solid #c62828;padding:.2rem .4rem}
.why{color:#c62828;font-size:.85rem;margin-left:5.5rem}.ev{font-size:.85rem;margin:.3rem 0}
.ev ul{margin:.2rem 0;padding-left:1.2rem}.tag{display:inline-block;background:#eef2f6;border-radius:3px;padding:0 .3rem;margin:.1rem}
.tag.bad{background:#fdecea;color:#c62828}
"""
CAPTIONS_SHOWN = 5


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{v:.1%}"


def worst(verdicts: pl.DataFrame, n: int) -> pl.DataFrame:
    """The `n` worst dialogues: rejected first, then most hallucinated objects, then lowest score;
    dialogues with nothing found against them are never shown as 'worst'."""
    return (
        verdicts.with_row_index("_row")
        .filter(pl.col("would_reject") | (pl.col("hallucinated") > 0) | (pl.col("score") < 1))
        .sort(["would_reject", "hallucinated", "score"], descending=[True, True, False], nulls_last=True)
        .head(n)
    )


def _totals(s: AuditSummary) -> str:
    rows: list[list[object]] = [
        ["dialogues", s.dialogues],
        ["with annotations (grounded)", s.annotated],
        ["image without annotations", s.unannotated],
        ["dialogues mentioning a decidable object", s.with_mentions],
        ["objects mentioned (distinct per dialogue)", s.mentioned],
        ["objects hallucinated", s.hallucinated],
        ["CHAIR-i (hallucinated / mentioned)", s.chair_i],
        ["CHAIR-s (dialogues with a hallucination / with mentions)", s.chair_s],
        ["mean coverage (assistant turns with a check)", s.mean_coverage],
        ["mean grounding score", s.mean_score],
        ["would be rejected", s.would_reject],
        ["would be rejected (share)", _pct(s.would_reject_share)],
    ]
    return _table(["", "value"], rows)


def _evidence(m: MergedImage | None, bad: set[str]) -> str:
    if m is None:
        return '<p class="ev warn">no annotations for this image: only the judge could check it</p>'
    counts = Counter(o.name for o in m.objects)
    tags = " ".join(
        f'<span class="tag">{escape(name)} ×{n}</span>'
        for name, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))
    )
    missing = " ".join(f'<span class="tag bad">{escape(o)}</span>' for o in sorted(bad))
    caps = "".join(f"<li>{escape(c.text)}</li>" for c in m.captions[:CAPTIONS_SHOWN])
    more = len(m.captions) - CAPTIONS_SHOWN
    return (
        '<div class="ev">'
        f"<b>annotated objects</b> ({escape(', '.join(m.sources))}): {tags or '<span class=muted>none</span>'}<br>"
        + (f"<b>not annotated, yet asserted</b>: {missing}<br>" if missing else "")
        + f"<b>captions</b><ul>{caps or '<li class=muted>none</li>'}</ul>"
        + (f'<span class="muted">... and {more} more captions</span>' if more > 0 else "")
        + f'<span class="muted">{len(m.qas)} annotated QA · {len(m.regions)} regions</span></div>'
    )


def _turns(d: AuditDialogue, grounding: dict[int, TurnGrounding]) -> str:
    out = []
    for i, t in enumerate(d.turns):
        g = grounding.get(i)
        failed = g is not None and bool(g.failures or g.hallucinated)
        text = escape(t.content).replace("\n", "<br>")
        role = "User" if t.role == "user" else "Assistant"
        out.append(
            f'<div class="turn {t.role}{" fail" if failed else ""}"><span class="role">{role}</span> {text}</div>'
        )
        if failed and g is not None:
            why = [
                *g.failures,
                *(f"hallucinated: {o}" for o in g.hallucinated if not any(o in f for f in g.failures)),
            ]
            if g.judge_reason:
                why.append(f"judge ({g.judge}): {g.judge_reason}")
            out.append(f'<div class="why">{escape(" · ".join(why))}</div>')
    return "".join(out)


def _thumb(m: MergedImage | None, data_root: Path) -> str:
    for f in m.files if m is not None else []:
        path = data_root / f.file_name if f.file_name else None
        if path is not None and path.is_file():
            b64 = thumbnail_b64(path.read_bytes())
            if b64:
                return f'<img src="data:image/jpeg;base64,{b64}" alt="{escape(f.file_name or "")}">'
    return '<p class="muted">(no image file under the data root)</p>'


def _example(row: dict, d: AuditDialogue, m: MergedImage | None, data_root: Path) -> str:
    grounding = {g.turn: g for g in (TurnGrounding.model_validate(t) for t in row["turns"])}
    bad = {o for t in grounding.values() for o in t.hallucinated}
    meta = (
        f"<b>{escape(d.id)}</b> <span class='muted'>{escape(d.image_key)} · {escape(d.image_file or '')}</span><br>"
        f"score: {_fmt(row['score'])} · coverage: {_fmt(row['coverage'])} · "
        f"hallucinated {row['hallucinated']} of {row['mentioned']} mentioned · CHAIR-i: {_fmt(row['chair_i'])}<br>"
        f"reasons: <code>{escape(', '.join(row['reasons']) or 'none')}</code>"
    )
    return (
        f'<div class="ex">{_thumb(m, data_root)}<div><p>{meta}</p>{_evidence(m, bad)}'
        f"{_turns(d, grounding)}</div></div>"
    )


def render_report(
    s: AuditSummary,
    verdicts: pl.DataFrame,
    dialogues: list[AuditDialogue],
    merged: dict[str, MergedImage],
    opts: AuditOptions,
) -> str:
    """The whole audit report as one HTML string."""
    reasons = [Count(label=k, count=v) for k, v in sorted(s.reasons_by_code.items(), key=lambda x: -x[1])]
    charts = [
        _img(
            plots.histogram(
                float_distribution(verdicts["coverage"]), "Coverage", "share of assistant turns checked"
            ),
            "coverage",
        ),
        _img(
            plots.histogram(float_distribution(verdicts["score"]), "Grounding score", "score"),
            "grounding score",
        ),
        _img(plots.barh(reasons, "Reject reasons"), "reject reasons"),
    ]
    bad = worst(verdicts, opts.examples)
    examples = "".join(
        _example(r, dialogues[r["_row"]], merged.get(r["image_key"]), Path(opts.data_root))
        for r in bad.iter_rows(named=True)
    )
    unann = (
        _table(["id", "image", "key"], [[u.id, u.image_file, u.image_key] for u in s.unannotated_examples])
        if s.unannotated_examples
        else '<p class="muted">every image has annotations</p>'
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>unimm audit: {escape(s.corpus)}</title><style>{CSS}{EXTRA_CSS}</style></head><body>",
        "<h1>unimm grounding audit</h1>",
        f"<p><code>{escape(s.corpus)}</code> ({escape(s.format)}) against <code>{escape(s.data_root)}</code> "
        f"({escape(', '.join(s.sources))}){' with the LLM judge' if s.judge else ''}</p>",
        "<h2>Hallucination (CHAIR) and coverage</h2>",
        _totals(s),
        '<div class="grid">' + "".join(f"<div>{c}</div>" for c in charts) + "</div>",
        "<h2>Reject reasons</h2>",
        _table(["reason", "dialogues"], [[c.label, c.count] for c in reasons])
        if reasons
        else '<p class="muted">none</p>',
        "<h2>Images without annotations</h2>",
        unann,
        f"<h2>Worst dialogues ({bad.height})</h2>",
        '<p class="muted">Rejected first, then most hallucinated objects, then lowest score. '
        "Failing turns are highlighted; the evidence is what the annotations say about the image.</p>",
        examples or '<p class="muted">none: no dialogue failed a check</p>',
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(
    path: Path,
    s: AuditSummary,
    verdicts: pl.DataFrame,
    dialogues: list[AuditDialogue],
    merged: dict[str, MergedImage],
    opts: AuditOptions,
) -> Path:
    """Write report.html atomically."""
    text = render_report(s, verdicts, dialogues, merged, opts)
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def print_summary(s: AuditSummary, out: Path, console: Console | None = None) -> None:
    """The audit's headline figures and reason counts as rich tables."""
    con = console or Console()
    t = Table(title=f"audit: {s.corpus} ({s.format})")
    t.add_column("")
    t.add_column("value", justify="right")
    for label, v in [
        ("dialogues", f"{s.dialogues:,}"),
        ("without annotations", f"{s.unannotated:,}"),
        ("CHAIR-i", _fmt_plain(s.chair_i)),
        ("CHAIR-s", _fmt_plain(s.chair_s)),
        ("mean coverage", _fmt_plain(s.mean_coverage)),
        ("mean score", _fmt_plain(s.mean_score)),
        ("would reject", f"{s.would_reject:,} ({_pct(s.would_reject_share) or '-'})"),
    ]:
        t.add_row(label, v)
    con.print(t)
    if s.reasons_by_code:
        r = Table(title="reject reasons")
        r.add_column("reason")
        r.add_column("dialogues", justify="right")
        for k, n in sorted(s.reasons_by_code.items(), key=lambda x: -x[1]):
            r.add_row(k, f"{n:,}")
        con.print(r)
    con.print(f"wrote {out}/verdicts.parquet, summary.json, report.html")


def _fmt_plain(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
