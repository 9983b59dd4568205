"""`unimm audit` end to end through the real CLI: a LLaVA-format JSON made of real COCO-MINI
records, a UniMM-Chat-release Parquet, unimm's own shards, and bad input (exit 2, one line, no
output folder)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import run_unimm
from tests.test_build import _build as build_llava_reformat
from tests.test_export_consumers import release_features
from unimm.audit.readers import image_key_from_name
from unimm.schema import GroundingReport, TurnGrounding
from unimm.tables import polars_dtype

ABSENT = "giraffe"


@pytest.fixture(scope="module")
def data_root(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our data-root layout over the real COCO-MINI files (annotations + the train2017 images)."""
    root = tmp_path_factory.mktemp("audit") / "data"
    (root / "coco").mkdir(parents=True)
    (root / "coco" / "annotations").symlink_to(realdata / "coco-mini" / "annotations")
    (root / "coco" / "train2017").symlink_to(realdata / "coco-mini" / "train2017")
    return root


@pytest.fixture(scope="module")
def coco(realdata: Path) -> dict[int, tuple[Counter, list[str]]]:
    """COCO-MINI train2017: image id -> (object counts, captions), straight from the real files."""
    ann = realdata / "coco-mini" / "annotations"
    inst = json.loads((ann / "instances_train2017.json").read_text())
    caps = json.loads((ann / "captions_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in inst["categories"]}
    out: dict[int, tuple[Counter, list[str]]] = {}
    for a in inst["annotations"]:
        out.setdefault(a["image_id"], (Counter(), []))[0][names[a["category_id"]]] += 1
    for c in caps["annotations"]:
        if c["image_id"] in out:
            out[c["image_id"]][1].append(c["caption"].strip())
    return out


def _llava(image: str, rid: str, *pairs: tuple[str, str]) -> dict:
    conv = []
    for i, (q, a) in enumerate(pairs):
        conv += [{"from": "human", "value": f"<image>\n{q}" if i == 0 else q}, {"from": "gpt", "value": a}]
    return {"id": rid, "image": image, "conversations": conv}


@pytest.fixture(scope="module")
def llava_file(coco, tmp_path_factory) -> tuple[Path, str]:
    """Three dialogues on real images (captions as answers, three spellings of the image name) and
    one that puts a giraffe into a picture the annotations say has none."""
    ids = sorted(i for i, (objs, caps) in coco.items() if caps and ABSENT not in objs)[:3]
    a, b, c = ids
    bad_id = ids[0]
    top = coco[bad_id][0].most_common(1)[0][0]
    records = [
        _llava(f"{a:012d}.jpg", f"{a:012d}", ("Describe the image.", coco[a][1][0])),
        _llava(f"coco/train2017/{b:012d}.jpg", f"{b:012d}", ("What is happening here?", coco[b][1][0])),
        _llava(f"COCO_train2014_{c:012d}.jpg", f"{c:012d}", ("What do you see?", coco[c][1][0])),
        _llava(
            f"{bad_id:012d}.jpg",
            "hallucinating",
            ("What is in the photo?", coco[bad_id][1][0]),
            ("Anything else?", f"The photo shows a {ABSENT} beside the {top}."),
        ),
    ]
    path = tmp_path_factory.mktemp("llava") / "llava_instruct.json"
    path.write_text(json.dumps(records, indent=1))
    return path, f"coco_{bad_id:012d}"


def _assert_refused(r, out: Path, *needles: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_image_names_in_every_coco_spelling() -> None:
    for name in (
        "000000033471.jpg",
        "coco/train2017/000000033471.jpg",
        "COCO_train2014_000000033471.jpg",
        "train2014/COCO_train2014_000000033471.jpg",
        "COCO_val2014_000000033471.jpg",
    ):
        assert image_key_from_name(name) == "coco_000000033471", name
    assert image_key_from_name("gqa/images/n161313.jpg") is None
    # unimm's own exports name images by key; Visual Genome by its own id
    assert image_key_from_name("coco/coco_000000033471.jpg") == "coco_000000033471"
    assert image_key_from_name("vg/vg_1634.jpg") == "vg_1634"
    assert image_key_from_name("vg/VG_100K/1634.jpg") == "vg_1634"
    assert image_key_from_name(None) is None


def test_llava_json_flags_the_absent_object(llava_file, data_root: Path, tmp_path: Path, cli) -> None:
    path, bad_key = llava_file
    out = tmp_path / "audit"
    r = cli("audit", path, "--data-root", data_root, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "CHAIR-i" in r.stdout and "hallucinated_object" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "summary.json", "verdicts.parquet"]

    v = pl.read_parquet(out / "verdicts.parquet")
    assert v.height == 4 and set(v["format"]) == {"llava"}
    assert v.schema["turns"] == polars_dtype(GroundingReport.model_fields["turns"].annotation)
    assert v["annotated"].all() and v["n_turns"].to_list() == [2, 2, 2, 4]
    bad = v.filter(pl.col("id") == "hallucinating").row(0, named=True)
    assert bad["image_key"] == bad_key
    assert f"hallucinated_object:{ABSENT}" in bad["reasons"] and bad["would_reject"]
    assert bad["hallucinated"] >= 1 and bad["chair_s"] is True
    # the failing turn is the last assistant turn (index 3), and it names the giraffe
    turns = [TurnGrounding.model_validate(t) for t in bad["turns"]]
    failing = [t for t in turns if t.hallucinated]
    assert [t.turn for t in failing] == [3] and ABSENT in failing[0].hallucinated
    good = v.filter(pl.col("id") != "hallucinating")
    assert not any(ABSENT in r for rs in good["reasons"] for r in rs)

    s = json.loads((out / "summary.json").read_text())
    assert s["dialogues"] == 4 and s["unannotated"] == 0 and s["sources"] == ["coco"]
    assert s["hallucinated"] == v["hallucinated"].sum() and s["mentioned"] == v["mentioned"].sum()
    assert s["chair_i"] == pytest.approx(s["hallucinated"] / s["mentioned"])
    with_mentions = v.filter(pl.col("mentioned") > 0)
    assert s["chair_s"] == pytest.approx((with_mentions["hallucinated"] > 0).mean())
    assert s["reasons_by_code"]["hallucinated_object"] >= 1
    assert s["would_reject"] == v["would_reject"].sum()

    html = (out / "report.html").read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert f"hallucinated_object:{ABSENT}" in html and "CHAIR-i" in html
    assert 'class="turn assistant fail"' in html  # the failing turn is highlighted
    assert f'<span class="tag bad">{ABSENT}</span>' in html  # beside the evidence that decided it
    assert "data:image/jpeg;base64," in html  # the real image, as a thumbnail


def _unimm_chat_parquet(path: Path, coco, realdata: Path) -> None:
    """Rows laid out like the Yirany/UniMM-Chat release: ds_name, image (HF Image), conversation
    (a JSON string), origin_dataset, idx, image_path; written by the `datasets` library itself."""
    datasets = pytest.importorskip("datasets")
    ids = sorted(i for i, (objs, caps) in coco.items() if caps and ABSENT not in objs)[3:6]
    rows: dict[str, list] = {k: [] for k in release_features()}
    for n, i in enumerate(ids):
        answer = coco[i][1][0] if n else f"There is a {ABSENT} in the middle of the scene."
        conv = [
            {"from": "human", "value": "<image>\nWhat can you see in this picture?"},
            {"from": "gpt", "value": answer},
        ]
        name = f"COCO_train2014_{i:012d}.jpg"
        rows["ds_name"].append("unimm-chat")
        rows["image"].append(
            {"bytes": (realdata / "coco-mini" / "train2017" / f"{i:012d}.jpg").read_bytes(), "path": None}
        )
        rows["conversation"].append(json.dumps(conv))
        rows["origin_dataset"].append("vqav2")
        rows["idx"].append(1000 + n)
        rows["image_path"].append(name)
    datasets.Dataset.from_dict(rows, features=release_features()).to_parquet(str(path))


def test_unimm_chat_release_parquet(coco, realdata: Path, data_root: Path, tmp_path: Path, cli) -> None:
    corpus = tmp_path / "UniMM-Chat_00000000-00000012.parquet"
    _unimm_chat_parquet(corpus, coco, realdata)
    out = tmp_path / "audit"
    r = cli("audit", corpus, "--data-root", data_root, "--out", out, "--sources", "coco")
    assert r.returncode == 0, r.stderr
    v = pl.read_parquet(out / "verdicts.parquet")
    assert v.height == 3 and set(v["format"]) == {"unimm-chat"}
    assert v["id"].to_list() == [f"{corpus.stem}:{i}" for i in range(3)]
    assert v["image_key"].str.starts_with("coco_").all() and v["annotated"].all()
    assert f"hallucinated_object:{ABSENT}" in v["reasons"][0].to_list()
    assert json.loads((out / "summary.json").read_text())["format"] == "unimm-chat"


def test_unimm_shards_audit(tmp_path: Path, cli) -> None:
    root = tmp_path / "data"
    assert cli("sample", "--out", root).returncode == 0
    shards = tmp_path / "shards"
    r = build_llava_reformat(tmp_path, root)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "audit"
    work = tmp_path / "audit-work"
    r = cli("audit", shards, "--data-root", root, "--out", out, "--work", work)
    assert r.returncode == 0, r.stderr
    v = pl.read_parquet(out / "verdicts.parquet")
    manifest = json.loads((shards / "manifest.json").read_text())
    assert v.height == manifest["total_samples"] and set(v["format"]) == {"shards"}
    assert v["annotated"].all()  # the shards were built from this very data root
    s = json.loads((out / "summary.json").read_text())
    assert s["dialogues"] == v.height and s["unannotated"] == 0
    assert list((work / "merged").glob("part-*.parquet"))  # --work keeps the evidence
    # a template build reformats the annotations: nothing in it can be a hallucination
    assert s["hallucinated"] == 0


def test_unknown_format_refused(data_root: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "audit"
    csv = tmp_path / "corpus.csv"
    csv.write_text("id,text\n1,hello\n")
    _assert_refused(
        cli("audit", csv, "--data-root", data_root, "--out", out), out, "corpus.csv", "unknown corpus format"
    )
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"question": "q", "answer": "a"}]))
    _assert_refused(
        cli("audit", other, "--data-root", data_root, "--out", out),
        out,
        "other.json",
        "unknown corpus format",
    )
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": "1", "image": "000000000001.jpg", "conversations": [')
    _assert_refused(
        cli("audit", broken, "--data-root", data_root, "--out", out), out, "broken.json", "invalid JSON"
    )
    r = cli("audit", other, "--data-root", data_root, "--out", out, "--format", "nope")
    _assert_refused(r, out, "--format")


def test_images_absent_from_annotations_refused(coco, data_root: Path, tmp_path: Path, cli) -> None:
    path = tmp_path / "elsewhere.json"
    records = [_llava(f"{900000000 + i:012d}.jpg", str(i), ("Q?", "A dog.")) for i in range(3)]
    path.write_text(json.dumps(records))
    out = tmp_path / "audit"
    r = cli("audit", path, "--data-root", data_root, "--out", out)
    _assert_refused(r, out, "elsewhere.json", "3 of 3 dialogues", "coco_000900000000", "record 0")

    # a share above --max-unannotated is refused too; below it, audited and reported
    some = next(i for i, (_, caps) in coco.items() if caps)
    records = [_llava(f"{some:012d}.jpg", "ok", ("Describe it.", coco[some][1][0])), *records[:1]]
    path.write_text(json.dumps(records))
    _assert_refused(cli("audit", path, "--data-root", data_root, "--out", out), out, "1 of 2 dialogues")
    r = cli("audit", path, "--data-root", data_root, "--out", out, "--max-unannotated", "0.5")
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["unannotated"] == 1 and s["unannotated_examples"][0]["image_key"] == "coco_000900000000"


def test_malformed_record_refused(coco, data_root: Path, tmp_path: Path, cli) -> None:
    some = next(i for i, (_, caps) in coco.items() if caps)
    good = _llava(f"{some:012d}.jpg", "ok", ("Describe it.", coco[some][1][0]))
    path = tmp_path / "malformed.json"
    out = tmp_path / "audit"
    path.write_text(json.dumps([good, {"id": "x", "image": f"{some:012d}.jpg"}]))
    r = cli("audit", path, "--data-root", data_root, "--out", out)
    _assert_refused(r, out, "malformed.json", "record 1", "field 'conversations'")
    bad_role = {**good, "conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "x"}]}
    path.write_text(json.dumps([good, bad_role]))
    r = cli("audit", path, "--data-root", data_root, "--out", out)
    _assert_refused(r, out, "record 1", "field 'conversations[1].from'", "'bot'")
    not_coco = {**good, "image": "gqa/images/n161313.jpg"}
    path.write_text(json.dumps([not_coco]))
    _assert_refused(
        cli("audit", path, "--data-root", data_root, "--out", out), out, "record 0", "field 'image'"
    )
    # UniMM-Chat rows: a conversation that is not JSON names the row and the column
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps({"conversation": "[{oops", "image_path": f"COCO_train2014_{some:012d}.jpg"}) + "\n"
    )
    _assert_refused(
        cli("audit", rows, "--data-root", data_root, "--out", out), out, "record 0", "field 'conversation'"
    )


def test_failure_keeps_a_previous_audit(llava_file, data_root: Path, tmp_path: Path) -> None:
    path, _ = llava_file
    out = tmp_path / "audit"
    assert run_unimm("audit", path, "--data-root", data_root, "--out", out).returncode == 0
    before = (out / "verdicts.parquet").read_bytes()
    broken = tmp_path / "broken.json"
    broken.write_text("[")
    assert run_unimm("audit", broken, "--data-root", data_root, "--out", out).returncode == 2
    assert (out / "verdicts.parquet").read_bytes() == before
