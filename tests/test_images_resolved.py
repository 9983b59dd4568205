"""Images are found under every name their sources know them by, and image-less shards are never
written by accident (issue 9, parts 4 and 6).

The data roots are built from the real COCO-MINI excerpt: its 2017 captions file as distributed,
plus a copy renamed to the 2014 release (`captions_train2014.json`, `COCO_train2014_%012d.jpg`,
same ids), as a root holding VQAv2-era 2014 annotations and today's 2017 images does. Only one
release's pictures are present (symlinks to the real JPEGs).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import run_unimm
from unimm.schema import Chat

N_IMAGES = 80


def name_2014(coco_id: int) -> str:
    return f"COCO_train2014_{coco_id:012d}.jpg"


def make_root(realdata: Path, root: Path, present: str, skip: int = 0) -> Path:
    """A data root with both releases' captions and only `present`'s ("2014" or "2017") pictures,
    the first `skip` of them left out."""
    mini = realdata / "coco-mini"
    ann = root / "coco" / "annotations"
    ann.mkdir(parents=True)
    doc = json.loads((mini / "annotations" / "captions_train2017.json").read_text())
    (ann / "captions_train2017.json").write_text(json.dumps(doc))
    for image in doc["images"]:
        image["file_name"] = name_2014(image["id"])
    (ann / "captions_train2014.json").write_text(json.dumps(doc))
    folder = root / "coco" / f"train{present}"
    folder.mkdir()
    for jpg in sorted((mini / "train2017").glob("*.jpg"))[skip:]:
        (folder / (jpg.name if present == "2017" else name_2014(int(jpg.stem)))).symlink_to(jpg)
    return root


def build(root: Path, tmp: Path, *extra: str):
    return run_unimm(
        "build", "--sources", "coco", "--llm", "template", "--data-root", root,
        "--work", tmp / "work", "--out", tmp / "shards", *extra,
    )  # fmt: skip


def shard_samples(out: Path) -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes} over every shard in `out`."""
    samples: dict[str, dict[str, bytes]] = {}
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tf:
            for m in tf.getmembers():
                key, ext = m.name.split(".", 1)
                samples.setdefault(key, {})[ext] = tf.extractfile(m).read()  # type: ignore[union-attr]
    return samples


def test_build_ships_every_image_whichever_release_name_is_on_disk(realdata: Path, tmp_path: Path):
    for present in ("2017", "2014"):
        tmp = tmp_path / present
        root = make_root(realdata, tmp / "data", present)
        r = build(root, tmp)
        assert r.returncode == 0, r.stdout + r.stderr
        manifest = json.loads((tmp / "shards" / "manifest.json").read_text())
        assert manifest["total_samples"] == N_IMAGES, (present, manifest["rejects_by_reason"])
        assert "image_missing" not in manifest["rejects_by_reason"] and not manifest["shard_rejects"]
        assert manifest["extensions"] == ["jpg", "json"]
        assert f"{N_IMAGES} dialogues in" in r.stdout
        samples = shard_samples(tmp / "shards")
        assert len(samples) == N_IMAGES
        for members in samples.values():
            chat = Chat.model_validate_json(members["json"])
            # the sample names the file it ships, and ships that file's bytes
            assert chat.image_file and f"/train{present}/" in chat.image_file
            assert members["jpg"] == (root / chat.image_file).read_bytes()
        assert run_unimm("verify", tmp / "shards").returncode == 0


def test_shards_cli_tries_every_known_name_and_lists_them(realdata: Path, tmp_path: Path):
    root = make_root(realdata, tmp_path / "data", "2017", skip=1)
    work = tmp_path / "work"
    for step in (
        ["ingest", "--sources", "coco", "--data-root", root, "--quiet"],
        ["merge"],
        ["generate", "--llm", "template", "--no-progress"],
        ["filter"],
    ):
        r = run_unimm(*step, "--work", work)
        assert r.returncode == 0, (step, r.stdout + r.stderr)
    out = tmp_path / "shards"
    r = run_unimm("shards", "--work", work, "--out", out, "--image-root", root)
    assert r.returncode == 0, r.stderr
    assert "image_missing" in r.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["total_samples"] == N_IMAGES - 1
    assert manifest["rejects_by_reason"]["image_missing"] == 1
    gone = int(sorted((realdata / "coco-mini" / "train2017").glob("*.jpg"))[0].stem)
    (reject,) = manifest["shard_rejects"]
    assert reject["image_key"] == f"coco_{gone:012d}"
    # every name tried is listed, the reason code stays `image_missing`
    assert reject["reasons"] == [
        f"image_missing:coco/train2014/{name_2014(gone)}|coco/train2017/{gone:012d}.jpg"
    ]


def test_build_fails_when_the_image_root_holds_no_image_unless_no_images(realdata: Path, tmp_path: Path):
    root = make_root(realdata, tmp_path / "data", "2017")
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    r = build(root, tmp_path, "--image-root", empty)
    assert r.returncode == 2, r.stdout + r.stderr
    assert str(empty) in r.stderr and f"{empty}/coco/train2017/" in r.stderr and "--no-images" in r.stderr
    assert not (tmp_path / "shards").exists()

    r = build(root, tmp_path, "--no-images")
    assert r.returncode == 0, r.stdout + r.stderr
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["extensions"] == ["json"] and manifest["total_samples"] == N_IMAGES
    assert "--no-images" in r.stdout
    assert run_unimm("verify", tmp_path / "shards").returncode == 0


@pytest.fixture
def kept_work(realdata: Path, tmp_path: Path) -> Path:
    """A work dir filtered by the pipeline from a data root whose pictures are all missing."""
    root = make_root(realdata, tmp_path / "data", "2017")
    for jpg in (root / "coco" / "train2017").iterdir():
        jpg.unlink()
    work = tmp_path / "work"
    r = run_unimm(
        "build", "--sources", "coco", "--llm", "template", "--data-root", root, "--work", work,
        "--until", "filter",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return work


def test_shards_cli_refuses_image_less_shards_unless_asked(kept_work: Path, tmp_path: Path):
    out = tmp_path / "shards"
    r = run_unimm("shards", "--work", kept_work, "--out", out)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no image" in r.stderr and "--no-images" in r.stderr
    assert not out.exists()

    r = run_unimm("shards", "--work", kept_work, "--out", out, "--no-images")
    assert r.returncode == 0, r.stderr
    assert "--no-images: the shards hold dialogues only" in r.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extensions"] == ["json"] and manifest["total_samples"] == N_IMAGES
    assert run_unimm("verify", out).returncode == 0
