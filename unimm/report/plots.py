"""Matplotlib charts of a Summary, rendered off-screen (Agg) to base64 PNG for embedding."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display anywhere: servers, CI, ssh sessions

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from unimm.report.summary import Count, Distribution  # noqa: E402

COLOR = "#3b6ea8"


def _png_base64(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def histogram(d: Distribution, title: str, xlabel: str) -> str | None:
    """A bar chart of a distribution's bins with its mean/median marked; None when empty."""
    if not d.bins:
        return None
    # Figure() directly, not pyplot: no global figure registry to leak between charts
    fig = Figure(figsize=(5.6, 3.2))
    ax = fig.add_subplot()
    xs = list(range(len(d.bins)))
    ax.bar(xs, [b.count for b in d.bins], color=COLOR, width=0.9)
    step = max(1, len(xs) // 10)
    ax.set_xticks(
        xs[::step],
        [b.label for b in d.bins][::step],
        rotation=30 if len(xs) > 8 else 0,
        ha="right" if len(xs) > 8 else "center",
    )
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.spines[["top", "right"]].set_visible(False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if d.mean is not None:
        # stats as a right-hand title: never drawn over the bars
        ax.set_title(
            f"n={d.n:,}  mean={d.mean:.2f}  median={d.median:g}", loc="right", fontsize=8, color="#555"
        )
    return _png_base64(fig)


def barh(counts: list[Count], title: str, xlabel: str = "dialogues", top: int = 15) -> str | None:
    """A horizontal bar chart of the `top` largest counts (the rest summed as `other`)."""
    if not counts:
        return None
    shown = counts[:top]
    rest = sum(c.count for c in counts[top:])
    labels = [c.label for c in shown] + ([f"other ({len(counts) - top})"] if rest else [])
    values = [c.count for c in shown] + ([rest] if rest else [])
    fig = Figure(figsize=(5.6, 0.9 + 0.28 * len(labels)))
    ax = fig.add_subplot()
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, values, color=COLOR)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yticks(ys, labels, fontsize=8)
    for y, v in zip(ys, values, strict=True):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(x=0.15)
    return _png_base64(fig)
