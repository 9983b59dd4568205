"""Vision in the loop (issue 12, part 2): the picture travels with its annotations to a
vision-language model. The VLM is tests/vlm_standin.py (no VLM runs on a CPU here), which verifies
every picture on arrival; the pictures are the real COCO JPEGs of ../shared/realdata/coco-mini
and the ones `unimm sample` draws, and everything else (cache, resume, filters, shards, the CLI)
is the real pipeline."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.vlm_standin import MODEL, VLMStandIn, expectations
from unimm.filter.config import JudgeConfig
from unimm.generate import GenerateConfig, generate_chats
from unimm.generate.cache import CACHE_FILE
from unimm.generate.estimate import estimate
from unimm.generate.vision import encode_jpeg, fit_within, qwen_image_tokens
from unimm.grounding.judge import judge_chats, judge_fingerprint
from unimm.merge import read_partition
from unimm.schema import MergedImage

N = 6
SIDE = 320  # below every coco-mini picture's longest side (>= 500): every one is resized


def coco_root(realdata: Path, root: Path, n: int = N) -> list[MergedImage]:
    """A data root holding the first `n` real coco-mini pictures (symlinks) and their records as
    merge writes them (one COCO file each, the captions of the official file)."""
    mini = realdata / "coco-mini"
    doc = json.loads((mini / "annotations" / "captions_train2017.json").read_text())
    folder = root / "coco" / "train2017"
    folder.mkdir(parents=True)
    records = []
    for image in sorted(doc["images"], key=lambda i: i["id"])[:n]:
        (folder / image["file_name"]).symlink_to(mini / "train2017" / image["file_name"])
        captions = [a for a in doc["annotations"] if a["image_id"] == image["id"]]
        records.append(
            MergedImage.model_validate(
                {
                    "image_key": f"coco_{image['id']:012d}",
                    "coco_id": image["id"],
                    "width": image["width"],
                    "height": image["height"],
                    "files": [
                        {
                            "source": "coco",
                            "split": "train2017",
                            "file_name": f"coco/train2017/{image['file_name']}",
                        }
                    ],
                    "sources": ["coco"],
                    "captions": [
                        {"sources": ["coco"], "source_ids": [str(a["id"])], "text": a["caption"]}
                        for a in captions
                    ],
                }
            )  # fmt: skip
        )
    return records


def vision_cfg(url: str, **kw: object) -> GenerateConfig:
    base = dict(backend="openai", model=MODEL, base_urls=[url], vision=True, vision_max_side=SIDE,
                concurrency=4, backoff_s=0.01, backoff_max_s=0.05, retries=1)  # fmt: skip
    return GenerateConfig(**{**base, **kw})


def rewrite(path: Path, quality: int) -> None:
    """Replace a picture (a symlink) by a re-encoded copy: same scene, other bytes."""
    with Image.open(path) as img:
        out = io.BytesIO()
        img.convert("RGB").save(out, format="JPEG", quality=quality)
    path.unlink()
    path.write_bytes(out.getvalue())


# -- the picture as sent ----------------------------------------------------------------------------
def test_fit_within_keeps_aspect_and_never_upscales() -> None:
    assert fit_within(640, 480, 320) == (320, 240)
    assert fit_within(480, 640, 320) == (240, 320)
    assert fit_within(300, 200, 768) == (300, 200)  # smaller than the side: as it is
    assert fit_within(5000, 3, 768) == (768, 1)


def test_qwen_image_tokens_follow_smart_resize() -> None:
    # 640x480 -> 644x476 (multiples of 28) -> 23 x 17 tokens, + vision start/end.
    assert qwen_image_tokens(640, 480) == 23 * 17 + 2
    assert qwen_image_tokens(768, 576) == 27 * 21 + 2
    # Below min_pixels (4 tokens' worth) a picture is scaled up to it.
    assert qwen_image_tokens(20, 20) == 2 * 2 + 2
    # Above max_pixels (16384 tokens' worth) it is scaled down under it.
    assert qwen_image_tokens(10000, 10000) <= 16384 + 2


def test_encode_jpeg_on_real_pictures(realdata: Path) -> None:
    for jpg in sorted((realdata / "coco-mini" / "train2017").glob("*.jpg"))[:4]:
        data = jpg.read_bytes()
        with Image.open(jpg) as orig:
            size = orig.size
        out, got = encode_jpeg(data, SIDE, 90)
        with Image.open(io.BytesIO(out)) as img:
            assert img.format == "JPEG" and img.size == got == fit_within(*size, SIDE)
            assert max(img.size) == SIDE
        same, kept = encode_jpeg(data, 4096, 90)
        assert kept == size  # never upscaled
    with pytest.raises(OSError):
        encode_jpeg(data[: len(data) // 3], SIDE, 90)  # a truncated file does not pass for a picture


# -- generation with the picture --------------------------------------------------------------------
def test_every_picture_is_verified_on_arrival_and_cached_by_its_bytes(realdata: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    records = coco_root(realdata, root)
    cache = tmp_path / "cache"
    with VLMStandIn(expectations(records, root, SIDE, judge=False)) as srv:
        cfg = vision_cfg(srv.url)
        res = generate_chats(records, cfg, cache, image_root=root)
        assert not srv.problems(), srv.problems()
        assert srv.count("dialogue_response") == len(records) == len(res.chats)
        assert {v.picture for v in srv.verdicts} == {Path(r.files[0].file_name).name for r in records}
        assert all(max(v.size) == SIDE for v in srv.verdicts)
        assert res.summary.prompt_version == "unimm_chat_vision/v1"
        # The same run again: every answer from the cache, nothing sent.
        again = generate_chats(records, cfg, cache, image_root=root)
        assert again.summary.requests_sent == 0 and again.summary.cache_hits == len(records)
        assert [c.turns for c in again.chats] == [c.turns for c in res.chats]
        # Other bytes for one picture: that request alone is sent again.
        rewrite(root / records[2].files[0].file_name, quality=70)
        changed = generate_chats(records, cfg, cache, image_root=root)
        assert changed.summary.requests_sent == 1 and changed.summary.cache_hits == len(records) - 1
        assert changed.chats[2].generator.request_id != res.chats[2].generator.request_id
        assert [c.generator.request_id for i, c in enumerate(changed.chats) if i != 2] == [
            c.generator.request_id for i, c in enumerate(res.chats) if i != 2
        ]
        # Another longest side: every picture is sent again, at the new size.
        srv.expect_max_side(400)
        bigger = generate_chats(records, vision_cfg(srv.url, vision_max_side=400), cache, image_root=root)
        assert bigger.summary.requests_sent == len(records) and bigger.summary.cache_hits == 0
    assert not srv.problems() and all(max(v.size) == 400 for v in srv.verdicts[-len(records) :])
    assert srv.count("dialogue_response") == 2 * len(records) + 1
    # A text-only run of the same records shares none of these cache entries.
    ids = {json.loads(line)["request_id"] for line in (cache / CACHE_FILE).read_text().splitlines()}
    assert len(ids) == 2 * len(records) + 1


def test_missing_and_broken_pictures_are_failures_naming_the_file(realdata: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    records = coco_root(realdata, root)
    gone = root / records[0].files[0].file_name
    gone.unlink()
    broken = root / records[1].files[0].file_name
    data = broken.read_bytes()
    broken.unlink()
    broken.write_bytes(data[: len(data) // 3])  # truncated mid-scan
    nameless = records[2].model_copy(update={"files": []})
    records = [records[0], records[1], nameless, *records[3:]]
    with VLMStandIn(expectations(records, root, SIDE, judge=False)) as srv:
        res = generate_chats(records, vision_cfg(srv.url), tmp_path / "cache", image_root=root)
        assert not srv.problems(), srv.problems()
        sent = srv.count("dialogue_response")
    failures = {f.image_key: f for f in res.failures}
    assert [c.image_key for c in res.chats] == [r.image_key for r in records[3:]] and sent == len(records) - 3
    assert failures[records[0].image_key].reason == "image_missing"
    assert str(gone) in failures[records[0].image_key].detail
    assert failures[records[1].image_key].reason == "image_undecodable"
    assert str(broken) in failures[records[1].image_key].detail
    assert failures[nameless.image_key].reason == "image_missing"
    assert "names no image file" in failures[nameless.image_key].detail
    assert res.summary.failures_by_reason == {"image_missing": 2, "image_undecodable": 1}


def test_vision_needs_a_vlm_server_and_an_image_root(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from unimm.errors import ConfigError

    for backend in ("template", "local"):
        with pytest.raises(ValidationError, match="needs --llm openai"):
            GenerateConfig(backend=backend, vision=True)
    with pytest.raises(ConfigError, match="image_root"):
        generate_chats([], vision_cfg("http://127.0.0.1:9/v1"), tmp_path / "cache")
    # A local judge never inherits generation's vision; asked for it, it is one clear error.
    gen = vision_cfg("http://127.0.0.1:9/v1")
    assert JudgeConfig(backend="local").inherit(gen).vision is None
    assert JudgeConfig().inherit(gen).vision is True
    with pytest.raises(ConfigError, match="filter.judge_llm"):
        JudgeConfig(backend="local", vision=True).llm_config()


def test_vision_without_a_vlm_is_one_clear_error(tmp_path: Path, cli) -> None:
    r = cli("generate", "--work", tmp_path, "--llm", "template", "--vision")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "generate.vision" in r.stderr and "--llm openai" in r.stderr


def test_judge_sees_the_picture(realdata: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    records = coco_root(realdata, root)
    with VLMStandIn(expectations(records, root, SIDE)) as srv:
        res = generate_chats(records, vision_cfg(srv.url), tmp_path / "gen", image_root=root)
        merged = {r.image_key: r for r in records}
        judge = JudgeConfig().inherit(vision_cfg(srv.url))
        judged = judge_chats(res.chats, merged, judge, tmp_path / "judge", image_root=root)
        assert not srv.problems(), srv.problems()
        assert srv.count("judge_response") == len(records) == len(judged.verdicts)
        assert all(v.verdict == "supported" for vs in judged.verdicts.values() for v in vs)
        assert judged.fingerprint == judge_fingerprint(judge) != judge_fingerprint(JudgeConfig())
        again = judge_chats(res.chats, merged, judge, tmp_path / "judge", image_root=root)
        assert again.requests_sent == 0 and again.cache_hits == len(records)


def test_shipped_vision_pipeline_loads_and_derives() -> None:
    from tests.conftest import REPO
    from unimm.config import load_config
    from unimm.filter.judged import judge_sees
    from unimm.pipeline.runner import derive

    cfg = load_config(REPO / "pipelines" / "unimm_chat_vision.yaml")
    assert cfg.generate.vision and cfg.generate.prompt_folder() == ("unimm_chat_vision", "v1")
    assert judge_sees(cfg.filter, cfg.generate)
    d = derive(cfg)  # every prompt set it names is found and fingerprinted up front
    assert d.judge_fp == judge_fingerprint(JudgeConfig(vision=True)) and d.judge_fp != judge_fingerprint(
        JudgeConfig()
    )
    assert "photograph itself" in d.filter_cfg.prompt_text  # the echo check reads the vision prompt


# -- cost -------------------------------------------------------------------------------------------
def test_estimate_counts_image_tokens(realdata: Path, tmp_path: Path) -> None:
    records = coco_root(realdata, tmp_path / "data")
    text = estimate(records, GenerateConfig(backend="openai", model=MODEL))
    seen = estimate(records, GenerateConfig(backend="openai", model=MODEL, vision=True, vision_max_side=SIDE))
    want = sum(qwen_image_tokens(*fit_within(r.width, r.height, SIDE)) for r in records)  # type: ignore[arg-type]
    assert text.image_tokens == 0 and seen.image_tokens == want > 0
    # The vision prompt set differs from the text one; the per-record parts differ by the pictures.
    assert seen.prompt_tokens - seen.shared_prefix_tokens * len(records) == (
        text.prompt_tokens - text.shared_prefix_tokens * len(records) + want
    )
    assert any("Qwen2.5-VL" in a for a in seen.assumptions)


# -- serving a VLM ----------------------------------------------------------------------------------
def test_serve_vllm_vision_command_line(cli) -> None:
    r = cli("serve", "vllm", "--model", "Qwen/Qwen2.5-VL-7B-Instruct", "--vision", "--print-command",
            "--mm-processor-kwargs", '{"max_pixels": 602112}', "--max-num-seqs", "128")  # fmt: skip
    assert r.returncode == 0, r.stderr
    cmd = shlex.split(r.stdout.strip())
    assert cmd[cmd.index("serve") + 1] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert json.loads(cmd[cmd.index("--limit-mm-per-prompt") + 1]) == {"image": 1}
    assert json.loads(cmd[cmd.index("--mm-processor-kwargs") + 1]) == {"max_pixels": 602112}
    assert int(cmd[cmd.index("--max-model-len") + 1]) >= 4096 and "--enable-prefix-caching" in cmd
    text = shlex.split(cli("serve", "vllm", "--model", "m", "--print-command").stdout.strip())
    assert "--limit-mm-per-prompt" not in text and "--mm-processor-kwargs" not in text
    for bad in (["--vision", "--mm-processor-kwargs", "{max_pixels"], ["--mm-processor-kwargs", "{}"]):
        r = cli("serve", "vllm", "--model", "m", "--print-command", *bad)
        assert r.returncode == 2 and "mm-processor-kwargs" in r.stderr and "Traceback" not in r.stderr


def test_standin_rejects_the_wrong_picture(realdata: Path, tmp_path: Path) -> None:
    # The instrument itself: a record whose file now holds another record's picture is caught on
    # arrival (answered HTTP 400, a failure the pipeline records), the other record passes.
    root = tmp_path / "data"
    records = coco_root(realdata, root, n=2)
    with VLMStandIn(expectations(records, root, SIDE, judge=False)) as srv:
        first = root / records[0].files[0].file_name
        first.unlink()
        first.symlink_to((root / records[1].files[0].file_name).resolve())
        res = generate_chats(records, vision_cfg(srv.url), tmp_path / "cache", image_root=root)
    [wrong] = srv.problems()
    assert wrong.picture == first.name and any("is not" in p for p in wrong.problems), wrong
    assert [c.image_key for c in res.chats] == [records[1].image_key]
    assert [f.reason for f in res.failures] == ["http_400"]


# -- the real CLI, end to end ----------------------------------------------------------------------
def _cache_lines(work: Path) -> int:
    p = work / "generate" / "cache" / "00000" / CACHE_FILE
    return sum(1 for line in p.read_text().splitlines() if line.strip()) if p.exists() else 0


def test_build_with_vision_end_to_end(tmp_path: Path, cli) -> None:
    """`unimm build --llm openai --set generate.vision=true` on the sample corpus: killed
    mid-generation and started again, every picture is verified on arrival exactly once, the LLM
    judge sees them too, shards come out; a rewritten picture costs one request of each."""
    data, work, out = tmp_path / "data", tmp_path / "work", tmp_path / "shards"
    assert cli("sample", "--out", data).returncode == 0
    base = ["build", "--data-root", data, "--work", work, "--out", out, "--no-progress"]
    r = cli(*base, "--until", "merge")
    assert r.returncode == 0, r.stderr
    records = [m for p in sorted((work / "merged").glob("part-*.parquet")) for m in read_partition(p)]
    side = 256  # below the sample's pictures (up to 512 px): each one is resized
    with VLMStandIn(expectations(records, data, side), hold_after=len(records) // 2) as srv:
        vision = ["--llm", "openai", "--base-url", srv.url, "--model", MODEL,
                  "--set", "generate.vision=true", "--set", f"generate.vision_max_side={side}",
                  "--set", "filter.judge=true", "--set", "generate.retries=1"]  # fmt: skip
        args = [sys.executable, "-m", "unimm", *map(str, base), *vision]
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while _cache_lines(work) < len(records) // 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        os.killpg(proc.pid, signal.SIGKILL)  # mid-generation: half answered and cached, half in flight
        proc.wait()
        assert _cache_lines(work) == len(records) // 2 and not (work / "markers" / "generate").exists()

        srv.hold_after = None  # the server is back
        r = cli(*base, *vision)
        assert r.returncode == 0, r.stdout + r.stderr
        assert not srv.problems(), srv.problems()
        # Every picture arrived, was verified, and was sent exactly once across the two runs.
        assert srv.count("dialogue_response") == len(records) == _cache_lines(work)
        assert sorted(v.picture for v in srv.verdicts if v.kind == "dialogue_response") == sorted(
            p.name for p in srv.expect.pictures.values()
        )
        manifest = json.loads((out / "manifest.json").read_text())
        filtered = manifest["steps"]["filter"]["input"]
        assert filtered == len(records) and srv.count("judge_response") == filtered
        # The stand-in's dialogues are true to the annotations: every one passes the real filters.
        assert manifest["total_samples"] == len(records) and manifest["extensions"] == ["jpg", "json"]
        assert manifest["build_config"]["generate"]["vision"] is True
        assert {g["prompt_version"] for g in manifest["generators"]} == {"unimm_chat_vision/v1"}

        # Nothing changed: nothing is sent. One picture rewritten: one generation and one judge request.
        sent = len(srv.verdicts)
        assert cli(*base, *vision).returncode == 0 and len(srv.verdicts) == sent
        rewrite(next(iter(srv.expect.pictures.values())), quality=60)
        r = cli(*base, *vision)
        assert r.returncode == 0, r.stderr
        assert [v.kind for v in srv.verdicts[sent:]] == ["dialogue_response", "judge_response"]
        assert not srv.problems()
    # What it costs: the work dir remembers the vision settings, and the estimate counts the pictures.
    r = cli("estimate", "--work", work, "--json")
    assert r.returncode == 0, r.stderr
    est = json.loads(r.stdout)["estimate"]
    # VisDial's own val/test pictures come without a recorded size: counted at the worst case
    sizes = [fit_within(m.width, m.height, side) if m.width and m.height else (side, side) for m in records]
    assert (side, side) in sizes
    want = sum(qwen_image_tokens(*s) for s in sizes)
    assert est["image_tokens"] == want and est["prompt_tokens"] > want
    r = cli("estimate", "--work", work, "--no-vision", "--json")
    assert json.loads(r.stdout)["estimate"]["image_tokens"] == 0
