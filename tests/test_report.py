"""`unimm stats` / `unimm show` end to end on small real shards (real COCO JPEGs, real webdataset)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import statistics
from pathlib import Path

import pytest
import webdataset as wds
from PIL import Image

from unimm.pipeline.counts import StepCounts, rejected_by_reason
from unimm.schema import IMAGE_PLACEHOLDER, Chat, GeneratorInfo, GroundingReport, Turn, TurnGrounding
from unimm.shards.manifest import Manifest, ShardEntry

COCO_IMAGES = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "realdata" / "coco-mini" / "train2017"
)

# (coco id, sources, Q/A exchanges, grounding score, has image); shard 0 = first three
DIALOGUES = [
    (790, ["coco", "vqav2"], 2, 0.5, True),
    (30752, ["coco"], 3, 1.0, True),
    (37666, ["coco", "vqav2", "aokvqa"], 1, None, True),
    (54718, ["coco", "vqav2"], 4, 0.75, True),
    (63217, ["coco", "okvqa"], 2, 0.25, False),
]
# What each pipeline step did, as the runner records it in the manifest: 16 records in, 2 lost to
# generation, 6 to the filter, 3 to dedup (8 in, dup rate 3/8), 5 shipped. `dedup_sign` is an
# internal step without drops. Listed out of pipeline order: the report puts them back in order.
STEPS = {
    "shards": StepCounts(input=5, output=5),
    "dedup_sign": StepCounts(input=8, output=8, units=2),
    "ingest": StepCounts(input=16, output=16, units=2),
    "merge": StepCounts(input=16, output=16),
    "generate": StepCounts(input=16, output=14, dropped={"generation:timeout": 2}, extra={"requests": 16}),
    "filter": StepCounts(
        input=14,
        output=8,
        dropped={"grounding_below_threshold": 1, "hallucinated_object": 2, "too_short": 3},
    ),
    "dedup": StepCounts(
        input=8, output=5, dropped={"exact_duplicate": 1, "near_duplicate": 2}, extra={"turn_pairs": 4}
    ),
    "decontaminate": StepCounts(input=5, output=5),
}
STEP_NAMES = ["ingest", "merge", "generate", "filter", "dedup", "dedup_sign", "decontaminate", "shards"]
REJECTS = rejected_by_reason(STEPS)  # the manifest's flat rejects_by_reason
# The report's rejection reasons: `step: code`, most first (ties in pipeline order).
STAGED_REJECTS = {
    "filter: too_short": 3,
    "generate: generation:timeout": 2,
    "filter: hallucinated_object": 2,
    "dedup: near_duplicate": 2,
    "filter: grounding_below_threshold": 1,
    "dedup: exact_duplicate": 1,
}
# Grounding reports by DIALOGUES index; 2 and 4 have none, like shards built before grounding.
# Assistant turns are the odd turn indices. Corpus: mentioned 2 + 1 = 3, hallucinated 1
# (CHAIR-i 1/3), one of the two dialogues with mentions hallucinates (CHAIR-s 1/2), coverage
# 0.5 / 1.0 / 0.0 (mean 0.5, 2 of 3 covered).
GROUNDING = {
    0: GroundingReport(
        score=0.5,
        coverage=0.5,
        checks=2,
        passed=1,
        mentioned=2,
        hallucinated=1,
        chair_i=0.5,
        chair_s=True,
        turns=[
            TurnGrounding(
                turn=1,
                checks=["object", "judge"],
                failures=["hallucinated_object:giraffe"],
                objects=["bus", "giraffe"],
                hallucinated=["giraffe"],
                judge="unsupported",
                judge_reason="no giraffe in the image",
            ),
            TurnGrounding(turn=3),
        ],
    ),
    1: GroundingReport(
        score=0.75,
        coverage=1.0,
        checks=4,
        passed=3,
        mentioned=1,
        hallucinated=0,
        chair_i=0.0,
        chair_s=False,
        turns=[
            TurnGrounding(turn=1, checks=["object", "judge"], objects=["bus"], judge="supported"),
            TurnGrounding(turn=3, checks=["object"], objects=["bus"], judge="not_checkable"),
            TurnGrounding(turn=5, checks=["count"], failures=["count_mismatch:bus:3!=2"], objects=["bus"]),
        ],
    ),
    3: GroundingReport(coverage=0.0, turns=[TurnGrounding(turn=t) for t in (1, 3, 5, 7)]),
}


def question(i: int, j: int) -> str:
    return " ".join(["what"] + ["thing"] * (i + j) + ["is", "shown?"])


def answer(i: int, j: int) -> str:
    return " ".join(["It", "is"] + ["a", "red", "bus"] * (1 + (i * 3 + j) % 4) + ["."])


def make_chat(i: int) -> Chat:
    coco_id, sources, n, score, _ = DIALOGUES[i]
    turns = []
    for j in range(n):
        q = question(i, j)
        turns.append(Turn(role="user", content=f"{IMAGE_PLACEHOLDER}\n{q}" if j == 0 else q))
        turns.append(Turn(role="assistant", content=answer(i, j)))
    key = f"coco_{coco_id:012d}"
    return Chat(
        id=key,
        image_key=key,
        image_file=f"coco/train2017/{coco_id:012d}.jpg",
        turns=turns,
        sources=sources,
        generator=GeneratorInfo(
            backend="template",
            model="template-v1",
            prompt_version="v1",
            prompt_fingerprint="fp123",
            request_id=f"r{i}",
        ),
        grounding_score=score,
        grounding=GROUNDING.get(i),
    )


def make_manifest(entries: list[ShardEntry], steps: dict[str, StepCounts] | None = None) -> Manifest:
    """The manifest of the test shards, built with the shard writer's own model."""
    steps = STEPS if steps is None else steps
    return Manifest(
        tool_version="0.1.0",
        prefix="unimm",
        extensions=["jpg", "json"],
        shards=entries,
        total_samples=sum(e.samples for e in entries),
        total_bytes=sum(e.bytes for e in entries),
        prompt_fingerprints=["fp123"],
        counts_by_source={"aokvqa": 1, "coco": 5, "okvqa": 1, "vqav2": 3},
        rejects_by_reason=rejected_by_reason(steps),
        steps=steps,
        shard_config={"prefix": "unimm", "maxcount": 3},
        build_config={"seed": 0},
    )


def write_shards(out: Path, manifest: bool = True) -> Path:
    """Two shards written with webdataset.TarWriter, plus a manifest.json written from
    unimm.shards.manifest.Manifest (with the per-step counts of STEPS)."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for s, idx in enumerate([[0, 1, 2], [3, 4]]):
        name = f"unimm-{s:06d}.tar"
        with wds.TarWriter(str(out / name)) as w:
            for i in idx:
                chat = make_chat(i)
                sample = {"__key__": chat.id, "json": chat.model_dump_json().encode()}
                if DIALOGUES[i][4]:
                    sample["jpg"] = (COCO_IMAGES / f"{DIALOGUES[i][0]:012d}.jpg").read_bytes()
                w.write(sample)
        data = (out / name).read_bytes()
        entries.append(
            ShardEntry(name=name, samples=len(idx), bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        )
    if manifest:
        (out / "manifest.json").write_text(make_manifest(entries).to_json())
    return out


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    if not COCO_IMAGES.is_dir():
        pytest.skip(f"real COCO images not found at {COCO_IMAGES}")
    return write_shards(tmp_path / "shards")


def _word_counts(role: str) -> list[int]:
    return [
        len(t.content.removeprefix(IMAGE_PLACEHOLDER + "\n").split())
        for i in range(len(DIALOGUES))
        for t in make_chat(i).turns
        if t.role == role
    ]


def test_stats_json_numbers(cli, shard_dir: Path, tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    r = cli("stats", shard_dir, "--json", "--html", html)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["dialogues"] == 5 and s["shards"] == 2 and s["with_image"] == 4
    assert s["turns"] == 12
    t = s["turns_per_dialogue"]
    assert (t["mean"], t["median"], t["min"], t["max"]) == (2.4, 2.0, 1.0, 4.0)
    assert [(b["label"], b["count"]) for b in t["bins"]] == [("1", 1), ("2", 2), ("3", 1), ("4", 1)]
    for key, role in (("answer_words", "assistant"), ("question_words", "user")):
        words = _word_counts(role)
        d = s[key]
        assert d["n"] == len(words) == 12
        assert d["mean"] == pytest.approx(statistics.mean(words))
        assert d["median"] == pytest.approx(statistics.median(words))
        assert (d["min"], d["max"]) == (min(words), max(words))
        assert sum(b["count"] for b in d["bins"]) == 12
    g = s["grounding"]
    assert g["n"] == 4 and g["missing"] == 1
    assert g["mean"] == pytest.approx(0.625) and g["min"] == 0.25 and g["max"] == 1.0
    assert (
        sum(b["count"] for b in g["bins"]) == 4 and g["bins"][-1]["count"] == 1
    )  # 1.0 lands in the last bin
    combos = {c["label"]: c["count"] for c in s["combinations"]}
    assert combos == {"coco+vqav2": 2, "coco": 1, "coco+vqav2+aokvqa": 1, "coco+okvqa": 1}
    assert {c["label"]: c["count"] for c in s["sources_per_dialogue"]} == {"1": 1, "2": 3, "3": 1}
    assert {c["label"]: c["count"] for c in s["by_source"]} == {
        "coco": 5,
        "vqav2": 3,
        "aokvqa": 1,
        "okvqa": 1,
    }
    m = s["manifest"]
    assert m["samples"] == 5 and m["num_shards"] == 2 and m["bytes"] == s["shard_bytes"]
    assert list(m["rejection_reasons"].items()) == list(STAGED_REJECTS.items())
    # dedup removed 3 of the 8 dialogues that entered it, as its step recorded
    assert (m["dedup_rejects"], m["dialogues_in"]) == (3, 8)
    assert list(m["steps"]) == STEP_NAMES
    assert m["steps"]["dedup"] == STEPS["dedup"].model_dump()
    assert s["dup_rate"] == pytest.approx(3 / 8)
    assert m["warnings"] == []
    assert [g["dialogues"] for g in s["generators"]] == [5]
    assert html.is_file() and "report:" in r.stderr


def test_stats_grounding_numbers(cli, shard_dir: Path) -> None:
    r = cli("stats", shard_dir, "--json", "--no-html")
    assert r.returncode == 0, r.stderr
    g = json.loads(r.stdout)["grounding_report"]
    assert g["dialogues"] == 3  # two dialogues carry no report (older shards) and are left out
    assert g["coverage"]["mean"] == pytest.approx(0.5) and g["coverage"]["n"] == 3
    assert g["covered"] == pytest.approx(2 / 3)
    assert (g["mentioned"], g["hallucinated"]) == (3, 1)
    assert g["chair_i"] == pytest.approx(1 / 3)
    assert g["chair_s"] == pytest.approx(1 / 2)
    counts = {
        k: {c["label"]: c["count"] for c in g[k]} for k in ("judge", "failures", "hallucinated_objects")
    }
    assert counts["judge"] == {"supported": 1, "unsupported": 1, "not_checkable": 1}
    assert counts["failures"] == {"hallucinated_object": 1, "count_mismatch": 1}
    assert counts["hallucinated_objects"] == {"giraffe": 1}
    assert {c["label"]: c["count"] for c in g["reject_reasons"]} == {
        "filter: hallucinated_object": 2,
        "filter: grounding_below_threshold": 1,
    }


def test_stats_grounding_tables_and_html(cli, shard_dir: Path) -> None:
    r = cli("stats", shard_dir)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"CHAIR-i \(hallucinated / mentioned objects\)\s+│\s+33\.3%", out)
    assert re.search(r"CHAIR-s .*│\s+50\.0%", out)
    assert re.search(r"dialogues with coverage > 0\s+│\s+66\.7%", out)
    assert re.search(r"unsupported\s+│\s+1", out) and re.search(r"giraffe\s+│\s+1", out)
    assert "grounding rejects (manifest)" in out
    text = (shard_dir / "report.html").read_text()
    assert "<h2>Grounding</h2>" in text and "33.3%" in text
    for alt in ("coverage", "judge verdicts", "failed checks", "hallucinated objects", "grounding rejects"):
        assert f'alt="{alt}"' in text


def test_stats_tables_and_self_contained_html(cli, shard_dir: Path) -> None:
    r = cli("stats", shard_dir)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"dialogues\s+│\s+5\s+│\s+5", out)
    assert re.search(r"turns \(Q/A exchanges\)\s+│\s+12", out)
    assert re.search(r"dup rate\s+│\s+│\s+37\.50%", out)
    assert "dedup: near_duplicate" in out and "coco+vqav2+aokvqa" in out and "fp123" in out
    # the per-step counts: step, input, output, dropped
    assert "pipeline steps (manifest)" in out
    assert re.search(r"generate\s+│\s+16\s+│\s+14\s+│\s+2\s", out)
    assert re.search(r"dedup\s+│\s+8\s+│\s+5\s+│\s+3\s", out)
    steps = out[out.index("pipeline steps (manifest)") :]
    rows = [steps.index(f"│ {name} ") for name in STEP_NAMES]
    assert rows == sorted(rows)  # pipeline order, not the manifest file's sorted keys
    html = shard_dir / "report.html"
    assert html.is_file()
    text = html.read_text()
    assert 'src="http' not in text and "<script" not in text and "<link" not in text and "url(" not in text
    pngs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(pngs) >= 6  # 4 histograms + 2 source charts + rejection reasons
    with Image.open(io.BytesIO(base64.b64decode(pngs[0]))) as im:
        assert im.format == "PNG" and im.width > 100
    thumbs = re.findall(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', text)
    assert 2 <= len(thumbs) <= 3  # 3 examples, one of the five samples has no image
    with Image.open(io.BytesIO(base64.b64decode(thumbs[0]))) as im:
        assert max(im.size) <= 256
    assert text.count('class="ex"') == 3
    assert "fp123" in text and "template-v1" in text
    assert "<h3>pipeline steps (manifest)</h3>" in text
    assert '<tr><td>dedup</td><td class="n">8</td><td class="n">5</td><td class="n">3</td>' in text


def test_stats_no_manifest_omits_that_part(cli, tmp_path: Path) -> None:
    if not COCO_IMAGES.is_dir():
        pytest.skip("real COCO images not found")
    d = write_shards(tmp_path / "s", manifest=False)
    r = cli("stats", d, "--json", "--no-html")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["manifest"] is None and s["dup_rate"] is None and s["dialogues"] == 5
    assert not (d / "report.html").exists()


def test_show_prints_dialogues(cli, shard_dir: Path) -> None:
    r = cli("show", shard_dir, "-n", "2", "--seed", "1")
    assert r.returncode == 0, r.stderr
    keys = [f"coco_{d[0]:012d}" for d in DIALOGUES]
    shown = [k for k in keys if re.search(rf"─ {k} ─", r.stdout)]
    assert len(shown) == 2
    assert r.stdout.count("User") >= 2 and "Assistant" in r.stdout and "template-v1" in r.stdout


def test_show_marks_unsupported_turns(cli, shard_dir: Path) -> None:
    r = cli("show", shard_dir, "--id", "coco_000000000790")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    (flag,) = [i for i, line in enumerate(lines) if "✗" in line]
    assert "✗ unsupported: hallucinated_object:giraffe (judge: no giraffe in the image)" in lines[flag]
    assert answer(0, 0) in lines[flag - 1]  # right under the first answer, the unsupported one
    assert re.search(r"coverage\s+50% \(1/2 assistant turns checked\)", r.stdout)
    assert re.search(r"CHAIR-i\s+0\.500 \(1/2 objects\)", r.stdout)
    # no report (older shards): no marks, the meta table says so
    old = cli("show", shard_dir, "--id", "coco_000000063217")
    assert old.returncode == 0, old.stderr
    assert "✗" not in old.stdout and re.search(r"CHAIR-i\s+-", old.stdout)


def test_show_by_id(cli, shard_dir: Path) -> None:
    key = "coco_000000054718"
    r = cli("show", shard_dir, "--id", key)
    assert r.returncode == 0, r.stderr
    assert key in r.stdout and "coco, vqav2" in r.stdout and "0.750" in r.stdout
    assert r.stdout.count("Assistant") == 4  # four exchanges
    assert question(3, 3) in r.stdout
    missing = cli("show", shard_dir, "--id", "coco_000000000001")
    assert missing.returncode == 2 and "coco_000000000001" in missing.stderr


@pytest.mark.parametrize("command", ["stats", "show"])
def test_empty_folder_exits_2(cli, tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli(command, empty)
    assert r.returncode == 2
    assert str(empty) in r.stderr and "no shards" in r.stderr
    assert not (empty / "report.html").exists()


def test_broken_inputs_exit_2(cli, shard_dir: Path) -> None:
    (shard_dir / "unimm-000001.tar").write_bytes(b"this is not a tar file" * 50)
    r = cli("stats", shard_dir)
    assert r.returncode == 2 and "unimm-000001.tar" in r.stderr
    assert not (shard_dir / "report.html").exists()


def test_invalid_manifest_exits_2_naming_file_and_field(cli, shard_dir: Path) -> None:
    """A manifest that does not validate is an error naming it and the field, not half a report."""
    path = shard_dir / "manifest.json"
    raw = json.loads(path.read_text())
    raw["steps"]["dedup"]["input"] = "eight"
    path.write_text(json.dumps(raw))
    r = cli("stats", shard_dir, "--no-html")
    assert r.returncode == 2
    assert str(path) in r.stderr and "field 'steps.dedup.input'" in r.stderr
    assert r.stdout == ""
    del raw["steps"]["dedup"], raw["total_samples"]
    path.write_text(json.dumps(raw))
    r = cli("stats", shard_dir)
    assert r.returncode == 2 and "field 'total_samples'" in r.stderr
    assert not (shard_dir / "report.html").exists()


def test_invalid_chat_names_record_and_field(cli, tmp_path: Path) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    with wds.TarWriter(str(d / "unimm-000000.tar")) as w:
        bad = make_chat(0).model_dump()
        bad["turns"] = bad["turns"][:1]
        w.write({"__key__": "coco_000000000790", "json": json.dumps(bad).encode()})
    r = cli("stats", d)
    assert r.returncode == 2
    assert "unimm-000000.tar" in r.stderr and "coco_000000000790" in r.stderr and "turns" in r.stderr
