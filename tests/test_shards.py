"""Shards: webdataset + datasets read them back, byte-identical rewrites, bounds, atomicity, verify."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from tests.test_filter import make_chat
from unimm.errors import UnimmError
from unimm.pipeline.counts import StepCounts
from unimm.schema import Chat, ShardSample
from unimm.shards import (
    MANIFEST_NAME,
    ShardConfig,
    read_manifest,
    verify_shards,
    write_shards,
    write_shards_result,
)

PAIRS = [
    ("What is shown here?", "A street scene with cars."),
    ("What time of day is it?", "It looks like midday."),
]


@pytest.fixture(scope="module")
def images(realdata) -> list[str]:
    files = sorted((realdata / "coco-mini" / "train2017").glob("*.jpg"))[:12]
    assert len(files) == 12
    return [str(p.relative_to(realdata)) for p in files]


def corpus(images: list[str]) -> list[Chat]:
    chats = []
    for rel in images:
        cid = f"coco_{int(Path(rel).stem):012d}"
        chats.append(make_chat(cid, PAIRS, image_file=rel, sources=("coco", "vqav2")))
    return chats[::-1]  # unsorted input: the writer orders by id


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_write_read_back_with_webdataset(tmp_path, realdata, images):
    import webdataset as wds

    chats = corpus(images)
    man = write_shards(
        chats,
        tmp_path,
        ShardConfig(prefix="t", maxcount=5),
        realdata,
        {"build_config": {"llm": {"api_key": "sk-secret", "model": "m"}}},
        steps={"filter": StepCounts(input=15, output=12, dropped={"refusal": 3})},
    )
    assert [s.name for s in man.shards] == ["t-000000.tar", "t-000001.tar", "t-000002.tar"]
    assert [s.samples for s in man.shards] == [5, 5, 2]
    assert man.extensions == ["jpg", "json"]
    assert man.counts_by_source == {"coco": 12, "vqav2": 12}
    assert man.rejects_by_reason == {"refusal": 3}
    assert man.build_config == {"llm": {"api_key": "***", "model": "m"}}
    assert "sk-secret" not in (tmp_path / MANIFEST_NAME).read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "README.md",  # the dataset card
        MANIFEST_NAME,
        "t-000000.tar",
        "t-000001.tar",
        "t-000002.tar",
    ]

    urls = [str(tmp_path / s.name) for s in man.shards]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    by_id = {c.id: c for c in chats}
    assert [s["__key__"] for s in samples] == sorted(by_id)
    for s in samples:
        chat = Chat.model_validate_json(s["json"])
        src = by_id[s["__key__"]]
        assert s["jpg"] == (realdata / src.image_file).read_bytes()  # original bytes, not re-encoded
        assert chat.turns[0].content == "<image>\n" + src.turns[0].content
        assert chat.turns[1:] == src.turns[1:]
        assert sum(t.content.count("<image>") for t in chat.turns) == 1
    assert verify_shards(tmp_path).samples == 12


@pytest.mark.slow
def test_read_back_with_hf_datasets(tmp_path, realdata, images, monkeypatch):
    # everything offline and inside tmp_path: nothing may touch the network or ~/.cache
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    out = tmp_path / "shards"
    man = write_shards(corpus(images), out, ShardConfig(maxcount=4), realdata)
    ds = datasets.load_dataset(
        "webdataset",
        data_files={"train": [str(out / s.name) for s in man.shards]},
        split="train",
        cache_dir=str(tmp_path / "cache"),
    )
    assert len(ds) == 12
    assert set(ds.column_names) == {"__key__", "__url__", "jpg", "json"}
    row = ds[0]
    assert row["__key__"] == sorted(c.id for c in corpus(images))[0]
    assert row["json"]["turns"][0]["content"].startswith("<image>\n")
    assert row["jpg"].size == Image.open(realdata / images[0]).size


def test_byte_identical_rewrite(tmp_path, realdata, images):
    a, b = tmp_path / "a", tmp_path / "b"
    ma = write_shards(corpus(images), a, ShardConfig(maxcount=5), realdata)
    mb = write_shards(list(reversed(corpus(images))), b, ShardConfig(maxcount=5), realdata)
    assert [sha(a / s.name) for s in ma.shards] == [sha(b / s.name) for s in mb.shards]
    assert (a / MANIFEST_NAME).read_bytes() == (b / MANIFEST_NAME).read_bytes()
    with tarfile.open(a / ma.shards[0].name) as tf:
        m = tf.getmembers()[0]
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "unimm", "unimm", 0o444)


def test_size_and_count_bounds_and_no_temp_files(tmp_path, realdata, images):
    biggest = max((realdata / f).stat().st_size for f in images)
    maxsize = 3 * biggest
    man = write_shards(corpus(images), tmp_path, ShardConfig(maxcount=4, maxsize=maxsize), realdata)
    assert sum(s.samples for s in man.shards) == 12
    for s in man.shards:
        p = tmp_path / s.name
        assert p.stat().st_size == s.bytes <= maxsize
        assert s.samples <= 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    # a rewrite with fewer shards leaves no stale shard behind
    man2 = write_shards(corpus(images)[:3], tmp_path, ShardConfig(maxcount=4, maxsize=maxsize), realdata)
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == [s.name for s in man2.shards]
    verify_shards(tmp_path)


def test_missing_image_rejected_not_dropped(tmp_path, realdata, images):
    chats = corpus(images)
    chats.append(make_chat("coco_999999999999", PAIRS, image_file="coco-mini/train2017/nope.jpg"))
    chats.append(make_chat("coco_999999999998", PAIRS, image_file=None))
    res = write_shards_result(chats, tmp_path, ShardConfig(), realdata)
    assert res.manifest.total_samples == 12
    assert sorted((r.id, r.reasons[0].split(":")[0], r.stage) for r in res.rejects) == [
        ("coco_999999999998", "image_missing", "shards"),
        ("coco_999999999999", "image_missing", "shards"),
    ]
    assert res.manifest.rejects_by_reason == {"image_missing": 2}
    assert {r.id for r in res.manifest.shard_rejects} == {"coco_999999999998", "coco_999999999999"}


def test_without_image_root_json_only(tmp_path, images):
    man = write_shards(corpus(images), tmp_path, ShardConfig())
    assert man.extensions == ["json"]
    with tarfile.open(tmp_path / man.shards[0].name) as tf:
        assert all(n.endswith(".json") for n in tf.getnames())
    verify_shards(tmp_path)


def test_verify_detects_corruption_and_manifest_mismatch(tmp_path, realdata, images, cli):
    man = write_shards(corpus(images), tmp_path, ShardConfig(maxcount=6), realdata)
    assert cli("verify", tmp_path).returncode == 0

    shard = tmp_path / man.shards[1].name
    data = bytearray(shard.read_bytes())
    data[3000] ^= 0xFF  # inside the first image's bytes
    shard.write_bytes(bytes(data))
    with pytest.raises(UnimmError, match=f"{man.shards[1].name}: sha256 differs"):
        verify_shards(tmp_path)
    r = cli("verify", tmp_path)
    assert r.returncode == 2 and "sha256 differs" in r.stderr

    write_shards(corpus(images), tmp_path, ShardConfig(maxcount=6), realdata)
    doc = json.loads((tmp_path / MANIFEST_NAME).read_text())
    doc["shards"][0]["samples"] = 7
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(doc))
    with pytest.raises(UnimmError, match="6 samples, manifest says 7"):
        verify_shards(tmp_path)

    (tmp_path / man.shards[0].name).unlink()
    with pytest.raises(UnimmError, match="missing"):
        verify_shards(tmp_path)


def test_verify_checks_sample_contract(tmp_path):
    """A hand-made shard whose json breaks the contract and whose jpg does not decode."""
    bad_chat = ShardSample.from_chat(make_chat("coco_1", PAIRS)).model_dump_json().encode()  # no <image>
    shard = tmp_path / "x-000000.tar"
    with tarfile.open(shard, "w") as tf:
        for name, payload in [("coco_1.json", bad_chat), ("coco_1.jpg", b"not a jpeg")]:
            ti = tarfile.TarInfo(name)
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
    man = {
        "tool_version": "0",
        "prefix": "x",
        "extensions": ["jpg", "json"],
        "shards": [{"name": shard.name, "samples": 1, "bytes": shard.stat().st_size, "sha256": sha(shard)}],
        "total_samples": 1,
        "total_bytes": shard.stat().st_size,
        "prompt_fingerprints": [],
        "counts_by_source": {},
        "rejects_by_reason": {},
        "shard_config": {},
    }
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(man))
    read_manifest(tmp_path)
    with pytest.raises(UnimmError) as e:
        verify_shards(tmp_path)
    assert "placeholder" in str(e.value) and "does not decode" in str(e.value)


def test_cli_shards_verify_export(tmp_path, realdata, images, cli):
    from tests.pipeline_helpers import pipeline_work, replace_chats

    work = pipeline_work(tmp_path / "work", "filter")
    replace_chats(work, "decontaminate", corpus(images))
    out = tmp_path / "shards"
    r = cli("shards", "--work", work, "--out", out, "--image-root", realdata, "--maxcount", "5")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / MANIFEST_NAME).read_text())["steps"]["shards"]["output"] == 12
    assert len(list(out.glob("*.tar"))) == 3
    assert cli("verify", out).returncode == 0
    r = cli("verify", tmp_path / "nowhere")
    assert r.returncode == 2 and "manifest not found" in r.stderr


def test_member_headers_are_tarfiles(tmp_path):
    """The writer's headers are the ones tarfile writes for the same member (pax format)."""
    from unimm.shards.writer import _Headers, member_header

    def tarfile_header(name: str, size: int, mtime: int) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w|") as tf:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = size, mtime, 0o444, "unimm", "unimm"
            tf.addfile(ti)
        return buf.getvalue()[: -2 * 512].rstrip(b"\0")

    names = ["a.jpg", "k" * 99 + ".", "k" * 101, "é.json", "日本.jpg", "a/b c.json", "x\x7f.png"]
    for mtime in (0, 1_700_000_000, 8**11):  # the last needs a pax record
        headers = _Headers(mtime)
        for name in names:
            for size in (0, 1, 511, 512, 10**9, 8**11 - 1, 8**11):
                h = headers(name, size)
                assert h == member_header(name, size, mtime)
                assert h.rstrip(b"\0") == tarfile_header(name, size, mtime)


@pytest.mark.parametrize("bufsize", [1000, 1 << 20])
def test_same_bytes_as_webdataset_tarwriter(tmp_path, realdata, images, monkeypatch, bufsize):
    """The one-pass writer writes exactly the tar webdataset's TarWriter wrote for the same samples
    (members in extension order: .jpg before .json, .json before .png), whatever the buffer size,
    and the manifest's sha256 is the file's."""
    import webdataset as wds

    from unimm.shards import writer

    monkeypatch.setattr(writer, "_BUFSIZE", bufsize)
    root = tmp_path / "img"
    (root / "sub").mkdir(parents=True)
    for rel in images[:4]:
        (root / Path(rel).name).write_bytes((realdata / rel).read_bytes())
    (root / "sub" / "p.png").write_bytes(bytes(range(256)) * 9)
    (root / "empty.jpg").write_bytes(b"")
    (root / "aligned.jpeg").write_bytes(b"q" * 1024)
    files = [Path(r).name for r in images[:4]] + ["sub/p.png", "empty.jpg", "aligned.jpeg"]
    ids = ["coco_" + "a" * 120, "coco_" + "k" * 91, "x_b", "x_c", "x_d", "x_e", "x_f"]  # long: pax names
    chats = [make_chat(i, PAIRS, image_file=f) for i, f in zip(ids, files, strict=True)]
    cfg = ShardConfig(maxcount=3, mtime=1234, fsync=False)
    man = write_shards(chats, tmp_path / "out", cfg, root)
    planned, _ = writer.plan_samples(chats, root, cfg)
    groups = writer.split_shards(planned, cfg)
    assert len(groups) == len(man.shards) == 3
    for entry, group in zip(man.shards, groups, strict=True):
        expect = tmp_path / f"wds-{entry.name}"
        with open(expect, "wb") as f:
            tw = wds.TarWriter(f, user="unimm", group="unimm", mode=0o444, mtime=cfg.mtime, encoder=False)
            for s in group:
                tw.write(
                    {
                        "__key__": s.chat.id,
                        "json": s.json,
                        writer.image_ext(s.image.name): s.image.read_bytes(),
                    }
                )
            tw.close()
        got = tmp_path / "out" / entry.name
        assert got.read_bytes() == expect.read_bytes()
        assert entry.sha256 == sha(got) and entry.bytes == got.stat().st_size


def test_failed_shard_write_leaves_no_temp_file_or_thread(tmp_path, realdata, images, monkeypatch):
    import threading

    from unimm.shards import writer

    def shrank(self, fd, size, name):
        raise OSError(f"{name}: the file shrank while it was being written to a shard")

    monkeypatch.setattr(writer._TarSink, "copy_from", shrank)
    with pytest.raises(OSError, match="shrank"):
        write_shards(corpus(images), tmp_path, ShardConfig(maxcount=5, fsync=False), realdata)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "unimm-shard-sha256"]
