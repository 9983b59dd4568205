"""A stand-in, on 127.0.0.1, for a GPU vLLM server serving a vision-language model (Qwen2.5-VL).

No vision-language model can run on the CPUs of this project's machines, so this server takes the
GPU server's place in tests and says so. It is a tests/fault_server.FaultServer whose behaviour
inspects every chat request the way a VLM server would have to read it, and records a verdict:

- the message schema: OpenAI chat messages, a system message, the last message a user message
  whose content is exactly one `image_url` part (a `data:image/jpeg;base64,` URL) and one `text`
  part; the `response_format` envelope carrying the expected JSON schema;
- the picture: the data URL decodes with Pillow as a JPEG whose size is the original picture's
  fitted to the configured longest side (the original's own when smaller), and whose pixels are
  those of the picture the annotations belong to (thumbnails compared);
- the prompt: the system message is the vision prompt set's, and the rendered annotations of one
  known record are in the text.

It answers what the model would have had to: a valid dialogue built from the annotation text it
received (captions, answered questions and dialogue rounds), or, for the judge, a verdict per answer; a request
that fails a check gets HTTP 400 naming what was wrong. Everything after the server (parsing,
cache, filters, grounding, dedup, shards) is the real pipeline.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

from tests.fault_server import FaultServer, Reply, Seen, completion_reply, json_reply
from unimm.generate.vision import DATA_URL_PREFIX, fit_within

MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
# Mean absolute difference (0-255) of 16x16 grey thumbnails under which the picture that arrived
# is the one expected: JPEG re-encoding moves them by ~1, two different photographs by tens.
SAME_PICTURE = 6.0


@dataclass(frozen=True)
class Verdict:
    """What the stand-in found in one chat request."""

    kind: str  # "dialogue" | "judge" | "?" (schema unknown)
    picture: str | None  # the original file the annotations belong to
    size: tuple[int, int] | None  # of the JPEG that arrived
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Expectations:
    """What the requests must carry. `pictures`: rendered annotation text of each record -> its
    original picture file; `systems`: vision system prompt -> the schema name answered to it."""

    pictures: Mapping[str, Path]
    systems: Mapping[str, str]
    max_side: int
    schemas: Mapping[str, dict] = field(default_factory=dict)  # schema name -> JSON schema


def _sentence(text: str) -> str:
    text = " ".join(text.split()).strip().rstrip(".")
    return text[:1].upper() + text[1:] + "."


def dialogue_from(annotations: str) -> dict:
    """A dialogue true to the annotation text: what the picture shows (its first caption, or the
    caption a VisDial asker saw), then the annotated questions and dialogue rounds with their
    agreed answers."""
    turns = []
    section = ""
    for line in annotations.splitlines():
        if line and not line.startswith(("-", " ")):
            section = line
            continue
        caption = re.match(r"- (?:Caption shown to the asker: )?(.+)$", line)
        if section.startswith(("Captions", "Conversations")) and caption and not turns:
            turns.append({"question": "What does the picture show?", "answer": _sentence(caption.group(1))})
        qa = re.match(r"(?:- |  )Q: (.+?) A: (.+?)(?: \(other answers: .*\))?$", line)
        if section.startswith(("Questions", "Conversations")) and qa and len(turns) < 8:
            turns.append({"question": qa.group(1).strip(), "answer": _sentence(qa.group(2))})
    return {"turns": turns}


def verdicts_for(text: str) -> dict:
    """A judge answer: every numbered answer of the conversation supported."""
    answers = sorted({int(n) for n in re.findall(r"^A(\d+):", text, flags=re.M)})
    return {
        "verdicts": [{"answer": n, "verdict": "supported", "reason": "It is annotated."} for n in answers]
    }


def _thumb(img: Image.Image) -> Image.Image:
    return img.convert("L").resize((16, 16), Image.Resampling.BILINEAR)


class VLMStandIn(FaultServer):
    """The stand-in server (see the module docstring). `verdicts` holds one Verdict per chat
    request, in arrival order; `hold_after` (when set) leaves requests beyond that many answered
    unanswered, like a server that is killed mid-run."""

    def __init__(self, expect: Expectations, hold_after: int | None = None) -> None:
        self.expect = expect
        self.verdicts: list[Verdict] = []
        self.hold_after = hold_after
        self._vlock = threading.Lock()
        self._originals = self._snapshot()
        super().__init__(self._behave)

    def _snapshot(self) -> dict[Path, tuple[tuple[int, int], Image.Image]]:
        """Each expected picture's size as it must arrive and its thumbnail, read now: what the
        files hold later (a picture swapped for another) is checked against them."""
        out = {}
        for path in set(self.expect.pictures.values()):
            try:
                with Image.open(path) as img:
                    size = fit_within(img.width, img.height, self.expect.max_side)
                    out[path] = (size, _thumb(img.convert("RGB").resize(size)))
            except OSError:
                continue  # a broken picture: nothing of it may arrive
        return out

    def expect_max_side(self, side: int) -> None:
        """The client was configured with another longest side: expect pictures at that one."""
        with self._vlock:
            self.expect.max_side = side
            self._originals = self._snapshot()

    # -- the checks ---------------------------------------------------------------------------

    def inspect(self, body: dict) -> tuple[Verdict, str, str]:
        """(verdict, schema name, user text) of one chat request body."""
        problems: list[str] = []
        messages = body.get("messages") or []
        system = messages[0].get("content") if messages and messages[0].get("role") == "system" else None
        kind = self.expect.systems.get(system) if isinstance(system, str) else None
        if kind is None:
            problems.append("the system message is not a vision prompt set's")
        fmt = (body.get("response_format") or {}).get("json_schema") or {}
        if kind is not None and fmt.get("name") != kind:
            problems.append(f"response_format names {fmt.get('name')!r}, not {kind!r}")
        if kind in self.expect.schemas and fmt.get("schema") != self.expect.schemas[kind]:
            problems.append("response_format carries another schema")
        last = messages[-1] if messages else {}
        content = last.get("content")
        text, url = "", ""
        if last.get("role") != "user" or not isinstance(content, list):
            problems.append("the last message is not a user message with a list of parts")
        else:
            types = [p.get("type") for p in content if isinstance(p, dict)]
            if sorted(types) != ["image_url", "text"]:
                problems.append(f"the user parts are {types}, not one image_url and one text")
            for p in content:
                if isinstance(p, dict) and p.get("type") == "text":
                    text = p.get("text") or ""
                if isinstance(p, dict) and p.get("type") == "image_url":
                    url = (p.get("image_url") or {}).get("url") or ""
        for m in messages[:-1]:
            if not isinstance(m.get("content"), str):
                problems.append(
                    "a message before the last carries parts (only the last may hold the picture)"
                )
        known = [a for a in self.expect.pictures if a and a in text]
        annotations = max(known, key=len) if known else None
        if annotations is None:
            problems.append("no known record's annotations in the text")
        picture = self.expect.pictures.get(annotations) if annotations else None
        size = None
        if not url.startswith(DATA_URL_PREFIX):
            problems.append(f"the image URL is not a JPEG data URL: {url[:40]!r}")
        else:
            try:
                raw = base64.b64decode(url[len(DATA_URL_PREFIX) :], validate=True)
                with Image.open(io.BytesIO(raw)) as img:
                    img.load()
                    fmt_name, size, got = img.format, img.size, _thumb(img)
            except (OSError, ValueError) as e:
                problems.append(f"the image does not decode: {e}")
            else:
                if fmt_name != "JPEG":
                    problems.append(f"the image is {fmt_name}, not JPEG")
                if picture is not None and picture not in self._originals:
                    problems.append(f"{picture.name} is not a picture, yet an image arrived for it")
                elif picture is not None:
                    want, thumb = self._originals[picture]
                    if size != want:
                        problems.append(f"the image is {size[0]}x{size[1]}, not {want[0]}x{want[1]}")
                    diff = sum(ImageStat.Stat(ImageChops.difference(got, thumb)).mean)
                    if diff > SAME_PICTURE:
                        problems.append(f"the image is not {picture.name} (thumbnails differ by {diff:.1f})")
        verdict = Verdict(kind or "?", picture.name if picture else None, size, tuple(problems))
        return verdict, kind or "?", annotations or text

    # -- the server ---------------------------------------------------------------------------
    def _behave(self, seen: Seen) -> Reply | None:
        if seen.path.endswith("/models"):
            return json_reply(
                {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "vllm"}]}
            )
        body = json.loads(seen.body)
        verdict, kind, text = self.inspect(body)
        with self._vlock:
            if self.hold_after is not None and len(self.verdicts) >= self.hold_after:
                return None  # accepted and never answered
            self.verdicts.append(verdict)
        if not verdict.ok:
            return json_reply({"error": {"message": "; ".join(verdict.problems)}}, 400)
        if kind == "judge_response":
            user = body["messages"][-1]["content"]
            full = next(p["text"] for p in user if p.get("type") == "text")
            return completion_reply(json.dumps(verdicts_for(full)), 900, 120)
        return completion_reply(json.dumps(dialogue_from(text)), 900, 120)

    def count(self, kind: str) -> int:
        with self._vlock:
            return sum(v.kind == kind for v in self.verdicts)

    def problems(self) -> list[Verdict]:
        with self._vlock:
            return [v for v in self.verdicts if not v.ok]


def expectations(
    records: list, image_root: Path, max_side: int, token_budget: int = 1536, judge: bool = True
) -> Expectations:
    """What vision requests about `records` (MergedImage) must carry, from the project's own prompt
    sets and renderer: each record's rendered annotations -> its picture under `image_root`."""
    from unimm.filter.config import JudgeConfig
    from unimm.generate import GenerateConfig
    from unimm.generate.prompts import prompt_set_for, response_schema
    from unimm.generate.render import render_record
    from unimm.grounding.judge import load_judge_prompts
    from unimm.grounding.judge import response_schema as judge_schema
    from unimm.merge import file_names
    from unimm.shards.writer import resolve_image

    cfg = GenerateConfig(backend="openai", model=MODEL, vision=True, vision_max_side=max_side)
    pictures = {}
    for r in records:
        name = resolve_image(image_root, file_names(r))
        if name is not None:
            pictures[render_record(r, token_budget).text] = image_root / name
    systems = {prompt_set_for(cfg).system: "dialogue_response"}
    schemas = {"dialogue_response": response_schema()}
    if judge:
        systems[load_judge_prompts(JudgeConfig(vision=True)).system] = "judge_response"
        schemas["judge_response"] = judge_schema().schema
    return Expectations(pictures, systems, max_side, schemas)
