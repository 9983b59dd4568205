"""Random scenes of coloured shapes, and their rendering with Pillow.

A scene is the single source of truth for one demo picture: every caption, question, box and
region of the demo corpus is derived from it, so the annotations are true of the pixels.
Shapes sit in distinct cells of a 3x2 grid, so they never overlap and each has a clear
horizontal (left / middle / right) and vertical (top / bottom) position.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

# Far apart in RGB so that a JPEG-compressed pixel still maps back to its colour name.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
    "orange": (245, 130, 20),
    "purple": (140, 50, 170),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"white": (255, 255, 255), "light gray": (225, 225, 225)}
KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLUMNS: tuple[str, ...] = ("left", "middle", "right")
ROWS: tuple[str, ...] = ("top", "bottom")
SIZES: tuple[tuple[int, int], ...] = ((480, 360), (512, 384), (400, 300), (360, 480), (448, 336))
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Shape:
    """One filled shape; `box` is the square (x, y, side, side) it is drawn in, `bbox` its tight extent."""

    kind: str
    colour: str
    col: int  # grid column 0..2
    row: int  # grid row 0..1
    box: tuple[int, int, int, int]
    large: bool  # fills most of its cell (else small)

    @property
    def horizontal(self) -> str:
        return COLUMNS[self.col]

    @property
    def vertical(self) -> str:
        return ROWS[self.row]

    @property
    def name(self) -> str:
        """`red circle`."""
        return f"{self.colour} {self.kind}"

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """Tight pixel extent (x, y, w, h) of the drawn outline."""
        pts = _outline(self)
        x0, y0 = math.floor(min(p[0] for p in pts)), math.floor(min(p[1] for p in pts))
        x1, y1 = math.ceil(max(p[0] for p in pts)), math.ceil(max(p[1] for p in pts))
        return (x0, y0, x1 - x0 + 1, y1 - y0 + 1)

    def polygon(self) -> list[float]:
        """Outline as a flat [x1, y1, x2, y2, ...] list (COCO segmentation style)."""
        return [round(c, 2) for pt in _outline(self) for c in pt]

    def area(self) -> float:
        """Pixel area of the outline polygon (shoelace)."""
        pts = _outline(self)
        s = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True))
        return round(abs(s) / 2.0, 2)


@dataclass(frozen=True)
class Scene:
    """A picture: its size, background and shapes (sorted by grid position)."""

    width: int
    height: int
    background: str
    shapes: tuple[Shape, ...]

    def count(self, *, kind: str | None = None, colour: str | None = None) -> int:
        return sum(
            1
            for s in self.shapes
            if (kind is None or s.kind == kind) and (colour is None or s.colour == colour)
        )

    def at(self, col: int | None = None, row: int | None = None) -> list[Shape]:
        return [s for s in self.shapes if (col is None or s.col == col) and (row is None or s.row == row)]


def random_scene(rng: random.Random) -> Scene:
    """Draw 1-5 non-overlapping shapes on one of a few canvas sizes."""
    width, height = rng.choice(SIZES)
    cw, ch = width // 3, height // 2
    n = rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 5))
    cells = rng.sample([(c, r) for r in range(2) for c in range(3)], n)
    shapes = []
    for col, row in sorted(cells, key=lambda cr: (cr[1], cr[0])):
        kind = rng.choice(KINDS)
        # Repeat colours and kinds now and then so that counting questions have answers > 1.
        colour = rng.choice(list(PALETTE)) if not shapes or rng.random() < 0.7 else shapes[-1].colour
        frac = rng.uniform(0.5, 0.85)
        side = int(min(cw, ch) * frac)
        x = col * cw + rng.randint(4, cw - side - 4)
        y = row * ch + rng.randint(4, ch - side - 4)
        shapes.append(Shape(kind, colour, col, row, (x, y, side, side), frac >= 0.7))
    return Scene(width, height, rng.choice(("white", "white", "white", "light gray")), tuple(shapes))


def _outline(s: Shape) -> list[tuple[float, float]]:
    x, y, w, h = s.box
    x1, y1 = x + w - 1, y + h - 1
    if s.kind == "square":
        return [(x, y), (x1, y), (x1, y1), (x, y1)]
    if s.kind == "triangle":
        return [((x + x1) / 2, y), (x1, y1), (x, y1)]
    cx, cy, r = (x + x1) / 2, (y + y1) / 2, (w - 1) / 2
    if s.kind == "circle":
        return [
            (cx + r * math.cos(2 * math.pi * i / 32), cy + r * math.sin(2 * math.pi * i / 32))
            for i in range(32)
        ]
    # star: 5 points, inner radius 0.45 R, first point straight up (so it is shorter than its square)
    pts = []
    for i in range(10):
        rad = r if i % 2 == 0 else 0.45 * r
        a = -math.pi / 2 + math.pi * i / 5
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def render(scene: Scene) -> bytes:
    """JPEG bytes of the scene; identical bytes for an identical scene (no metadata, fixed quality)."""
    img = Image.new("RGB", (scene.width, scene.height), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    for s in scene.shapes:
        fill = PALETTE[s.colour]
        x, y, w, h = s.box
        if s.kind == "circle":
            draw.ellipse((x, y, x + w - 1, y + h - 1), fill=fill)
        elif s.kind == "square":
            draw.rectangle((x, y, x + w - 1, y + h - 1), fill=fill)
        else:
            draw.polygon(_outline(s), fill=fill)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    return buf.getvalue()


def nearest_colour(rgb: tuple[float, float, float]) -> str:
    """Name of the palette or background colour closest to an RGB triple."""
    named = {**PALETTE, **BACKGROUNDS}
    return min(named, key=lambda n: sum((a - b) ** 2 for a, b in zip(named[n], rgb, strict=True)))
