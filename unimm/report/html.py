"""The self-contained HTML report: inline CSS, charts and thumbnails as base64 data URIs; no
scripts, fonts, stylesheets or images are fetched from anywhere."""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path

from PIL import Image

from unimm.report import plots
from unimm.report.read import Sample
from unimm.report.show import turn_flags
from unimm.report.summary import Count, Distribution, GroundingSummary, Summary
from unimm.schema import IMAGE_PLACEHOLDER
from unimm.workdir import atomic_path

THUMB_PX = 256

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .6rem;font-size:.9rem}
th{background:#f4f6f8;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1rem}
.grid img{max-width:100%}.muted{color:#777}.warn{color:#a15c00}
.ex{display:flex;gap:1rem;border:1px solid #ddd;border-radius:6px;padding:.8rem;margin:.8rem 0}
.ex img{width:auto;max-width:256px;height:auto;align-self:flex-start;border-radius:4px}
.turn{margin:.3rem 0}.role{font-weight:600;display:inline-block;min-width:5.5rem}.user .role{color:#3b6ea8}
.assistant .role{color:#2e7d32}.flag{color:#b00020;font-weight:600;margin:0 0 .3rem 5.5rem}code{font-size:.85rem}pre{background:#f6f6f6;padding:.6rem;overflow:auto;font-size:.8rem}
"""


def _fmt(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if v != int(v) else f"{int(v):,}"
    if isinstance(v, int):
        return f"{v:,}"
    return escape(str(v))


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_fmt(c)}</td>' if isinstance(c, int | float) else f"<td>{_fmt(c)}</td>"
            for c in r
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(b64: str | None, alt: str) -> str:
    if b64 is None:
        return f'<p class="muted">{escape(alt)}: no data</p>'
    return f'<img src="data:image/png;base64,{b64}" alt="{escape(alt)}">'


def thumbnail_b64(data: bytes, px: int = THUMB_PX) -> str | None:
    """A small JPEG thumbnail of an image as base64, or None when the bytes do not decode."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (px, px))  # JPEG: decode at reduced scale, much faster for big photos
            im = im.convert("RGB")
            im.thumbnail((px, px))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=75)
    except Exception:  # an undecodable image is shown as such, the report still renders
        return None
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _overview(s: Summary) -> str:
    m = s.manifest
    rows: list[list[object]] = [
        ["shards", s.shards, m.num_shards if m else None],
        ["samples (dialogues)", s.dialogues, m.samples if m else None],
        ["bytes", s.shard_bytes, m.bytes if m else None],
        ["samples with an image", s.with_image, None],
        ["turns (Q/A exchanges)", s.turns, None],
    ]
    if m is not None:
        rows.append(["dialogues into dedup", None, m.dialogues_in])
        rows.append(["dedup rejects", None, m.dedup_rejects])
        rows.append(["dup rate", None, f"{s.dup_rate:.2%}" if s.dup_rate is not None else None])
    out = _table(["", "in the shards", "manifest"], rows)
    if m is None:
        out += '<p class="muted">no manifest.json beside the shards</p>'
    else:
        for w in m.warnings:
            out += f'<p class="warn">{escape(w)}</p>'
        mismatch = [
            name
            for name, disk, man in (
                ("shards", s.shards, m.num_shards),
                ("samples", s.dialogues, m.samples),
                ("bytes", s.shard_bytes, m.bytes),
            )
            if man is not None and man != disk
        ]
        if mismatch:
            out += f'<p class="warn">manifest disagrees with the shards on: {escape(", ".join(mismatch))}</p>'
        if m.steps:
            out += "<h3>pipeline steps (manifest)</h3>" + _table(
                ["step", "input", "output", "dropped"],
                [[name, c.input, c.output, c.rejected] for name, c in m.steps.items()],
            )
    return out


def _generators(s: Summary) -> str:
    rows = [[g.backend, g.model, g.prompt_version, g.prompt_fingerprint, g.dialogues] for g in s.generators]
    out = _table(["backend", "model", "prompt version", "prompt fingerprint", "dialogues"], rows)
    m = s.manifest
    if m is not None and m.generator:
        out += (
            "<h3>generator (manifest)</h3><pre>"
            + escape(json.dumps(m.generator, indent=2, default=str))
            + "</pre>"
        )
    if m is not None and m.config:
        out += (
            "<details><summary>pipeline config (manifest)</summary><pre>"
            + escape(json.dumps(m.config, indent=2, default=str))
            + "</pre></details>"
        )
    return out


def _dist_table(named: list[tuple[str, Distribution]]) -> str:
    rows = [[name, d.n, d.missing, d.mean, d.median, d.min, d.max, d.p90] for name, d in named]
    return _table(["measure", "n", "missing", "mean", "median", "min", "max", "p90"], rows)


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{v:.1%}"


def _grounding(g: GroundingSummary) -> str:
    """The grounding section: coverage and corpus CHAIR table, then charts of judge verdicts,
    failure reasons, hallucinated objects and grounding rejects."""
    rejects = (
        _img(plots.barh(g.reject_reasons, "Grounding rejects (manifest)"), "grounding rejects")
        if g.reject_reasons
        else ""
    )
    if not g.dialogues:
        return (
            '<p class="muted">no grounding reports in the shards (built before grounding checks)</p>'
            + rejects
        )
    rows: list[list[object]] = [
        ["dialogues with a grounding report", g.dialogues],
        ["coverage (mean share of assistant turns checked)", _pct(g.coverage.mean)],
        ["dialogues with coverage > 0", _pct(g.covered)],
        ["objects mentioned", g.mentioned],
        ["objects hallucinated", g.hallucinated],
        ["CHAIR-i (hallucinated / mentioned objects)", _pct(g.chair_i)],
        ["CHAIR-s (dialogues with a hallucination, of those mentioning objects)", _pct(g.chair_s)],
    ]
    charts = [
        _img(
            plots.histogram(g.coverage, "Grounding coverage", "share of assistant turns checked"), "coverage"
        ),
        _img(plots.barh(g.judge, "Judge verdicts", xlabel="turns"), "judge verdicts") if g.judge else "",
        _img(plots.barh(g.failures, "Failed checks", xlabel="turns"), "failed checks") if g.failures else "",
        _img(
            plots.barh(g.hallucinated_objects, "Hallucinated objects", xlabel="turns"), "hallucinated objects"
        )
        if g.hallucinated_objects
        else "",
        rejects,
    ]
    grid = '<div class="grid">' + "".join(f"<div>{c}</div>" for c in charts if c) + "</div>"
    return _table(["measure", "value"], rows) + grid


def _example(sample: Sample) -> str:
    c = sample.chat
    thumb = thumbnail_b64(sample.image) if sample.image is not None else None
    img = (
        f'<img src="data:image/jpeg;base64,{thumb}" alt="{escape(sample.key)}">'
        if thumb
        else '<p class="muted">(no image)</p>'
    )
    turns = []
    flags = turn_flags(c)
    for i, t in enumerate(c.turns):
        text = escape(t.content)
        text = text.replace(escape(IMAGE_PLACEHOLDER), '<code class="muted">&lt;image&gt;</code>').replace(
            "\n", "<br>"
        )
        turns.append(
            f'<div class="turn {t.role}"><span class="role">{"User" if t.role == "user" else "Assistant"}</span> {text}</div>'
        )
        if i in flags:
            turns.append(f'<div class="flag">✗ {escape(flags[i])}</div>')
    g, r = c.generator, c.grounding
    meta = (
        f"<b>{escape(sample.key)}</b> <span class='muted'>({escape(sample.shard)})</span><br>"
        f"sources: {escape(', '.join(c.sources))} · grounding: {_fmt(c.grounding_score)} · "
        f"coverage: {_fmt(_pct(r.coverage) if r else None)} · CHAIR-i: {_fmt(r.chair_i if r else None)} · "
        f"generator: {escape(g.backend)}/{escape(g.model)} ({escape(g.prompt_version)})"
    )
    return f'<div class="ex">{img}<div><p>{meta}</p>{"".join(turns)}</div></div>'


def render_html(s: Summary, examples: list[Sample]) -> str:
    """The whole report as one HTML string."""
    m = s.manifest
    charts = [
        _img(
            plots.histogram(s.turns_per_dialogue, "Turns per dialogue", "Q/A exchanges"), "turns per dialogue"
        ),
        _img(plots.histogram(s.question_words, "Question length", "words"), "question length"),
        _img(plots.histogram(s.answer_words, "Answer length", "words"), "answer length"),
        _img(plots.histogram(s.grounding, "Grounding score", "score"), "grounding score"),
        _img(plots.barh(s.combinations, "Source combinations"), "source combinations"),
        _img(
            plots.barh(s.sources_per_dialogue, "Sources per dialogue", top=10),
            "sources per dialogue",
        ),
    ]
    if m is not None and m.rejection_reasons:
        reasons = [Count(label=k, count=v) for k, v in m.rejection_reasons.items()]
        charts.append(_img(plots.barh(reasons, "Rejection reasons"), "rejection reasons"))
    else:
        charts.append('<p class="muted">rejection reasons: not in the manifest</p>')
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>unimm report: {escape(s.shard_dir)}</title><style>{CSS}</style></head><body>",
        f"<h1>unimm corpus report</h1><p><code>{escape(s.shard_dir)}</code></p>",
        "<h2>Totals</h2>",
        _overview(s),
        "<h2>Generator</h2>",
        _generators(s),
        "<h2>Distributions</h2>",
        '<div class="grid">' + "".join(f"<div>{c}</div>" for c in charts) + "</div>",
        _dist_table(
            [
                ("turns per dialogue", s.turns_per_dialogue),
                ("question words", s.question_words),
                ("answer words", s.answer_words),
                ("grounding score", s.grounding),
            ]
        ),
        "<h2>Grounding</h2>",
        _grounding(s.grounding_report),
        "<h2>Sources</h2>",
        _table(["source", "dialogues"], [[c.label, c.count] for c in s.by_source]),
        _table(["combination", "dialogues"], [[c.label, c.count] for c in s.combinations[:30]]),
        "<h2>Example dialogues</h2>",
        "".join(_example(e) for e in examples) or '<p class="muted">none</p>',
        "</body></html>",
    ]
    return "\n".join(parts)


def write_html(s: Summary, examples: list[Sample], path: Path) -> Path:
    """Write the report atomically (readers never see half a file)."""
    text = render_html(s, examples)
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
