"""Every export loads unchanged in the program it is for: LLaVA's LazySupervisedDataset, the
Hugging Face `datasets` library beside the Yirany/UniMM-Chat release, and Muffin's TSV reader
(their reading contracts are reproduced in tests/consumers/)."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_unimm
from tests.consumers import llava, muffin
from tests.test_build import _build
from tests.test_filter import make_chat
from unimm.export import export_muffin_tsv, iter_shard_chats
from unimm.schema import IMAGE_PLACEHOLDER, Chat
from unimm.shards import ShardConfig, write_shards

PAIRS = [("What is on the plate?", "Some pasta and a fork."), ("Is it a restaurant?", "Yes, it seems so.")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """Shards of the demo build (sample data, LLaVA-1.5 template pipeline): 24 chats with images."""
    tmp = tmp_path_factory.mktemp("demo")
    r = run_unimm("sample", "--out", tmp / "data")
    assert r.returncode == 0, r.stderr
    r = _build(tmp, tmp / "data")
    assert r.returncode == 0, r.stderr
    return tmp / "shards"


@pytest.fixture(scope="module")
def demo_chats(demo: Path) -> dict[str, tuple[Chat, bytes]]:
    out = {c.id: (c, img) for c, img in iter_shard_chats(demo)}
    assert len(out) == 24 and all(img for _, img in out.values())
    return out


def export(shards: Path, fmt: str, out: Path, *extra: str | Path) -> None:
    r = run_unimm("export", "--shards", shards, "--format", fmt, "--out", out, *extra)
    assert r.returncode == 0, r.stdout + r.stderr


def rgb_of(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


# -- LLaVA ------------------------------------------------------------------------------------


def test_llava_every_record_loads_in_lazy_supervised_dataset(demo, demo_chats, tmp_path):
    out = tmp_path / "llava" / "llava_unimm.json"
    export(demo, "llava", out)
    # the default image folder: beside the JSON, named after it
    data = llava.LazySupervisedDataset(out, tmp_path / "llava" / "llava_unimm_images")
    assert len(data) == 24 and all(n > 128 for n in data.lengths)
    for i, record in enumerate(data.list_data_dict):
        chat, image = demo_chats[record["id"]]
        item = data[i]
        assert item["image"].mode == "RGB" and item["image"].tobytes() == rgb_of(image).tobytes()
        assert item["conversations"][0]["value"].startswith(IMAGE_PLACEHOLDER + "\n")
        assert [c["from"] for c in item["conversations"]] == [
            {"user": "human", "assistant": "gpt"}[t.role] for t in chat.turns
        ]


def test_llava_images_flag_is_the_image_folder(demo, tmp_path):
    out, images = tmp_path / "json" / "train.json", tmp_path / "pictures"
    export(demo, "llava", out, "--images", images)
    assert not (tmp_path / "json" / "train_images").exists()
    data = llava.LazySupervisedDataset(out, images)
    assert all(data[i]["image"] is not None for i in range(len(data)))


@pytest.fixture
def shared_picture(demo_chats, tmp_path) -> tuple[Path, bytes]:
    """Shards where two chats show one picture, named by two COCO releases (2014 and 2017)."""
    chat, image = next(iter(demo_chats.values()))
    number = chat.image_key.split("_")[1]
    root = tmp_path / "data"
    names = [f"coco/train2014/COCO_train2014_{number}.jpg", f"coco/train2017/{number}.jpg"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(image)
    chats = [
        make_chat(f"{chat.image_key}_{i}", PAIRS, image_key=chat.image_key, image_file=name)
        for i, name in enumerate(names)
    ]
    write_shards(chats, tmp_path / "shards", ShardConfig(), root)
    return tmp_path / "shards", image


def test_llava_one_file_per_picture_whatever_release_named_it(shared_picture, tmp_path):
    shards, image = shared_picture
    export(shards, "llava", tmp_path / "l.json")
    data = llava.LazySupervisedDataset(tmp_path / "l.json", tmp_path / "l_images")
    assert len({r["image"] for r in data.list_data_dict}) == 1
    files = [p for p in (tmp_path / "l_images").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert len(files) == 1 and files[0].read_bytes() == image
    assert [data[i]["image"].size for i in range(2)] == [rgb_of(image).size] * 2


def test_llava_text_only_records_from_shards_without_images(tmp_path):
    write_shards([make_chat("coco_000000000001", PAIRS)], tmp_path / "shards", ShardConfig())
    export(tmp_path / "shards", "llava", tmp_path / "l.json")
    data = llava.LazySupervisedDataset(tmp_path / "l.json", tmp_path / "l_images")
    assert "image" not in data.list_data_dict[0]
    item = data[0]  # LLaVA's text-only path: no image, no <image> token
    assert item["image"] is None and item["conversations"][0]["value"] == PAIRS[0][0]


# -- UniMM-Chat release Parquet ---------------------------------------------------------------


def release_features():
    """The Features the Yirany/UniMM-Chat card declares (dataset_info.features)."""
    import datasets

    return datasets.Features(
        {
            "ds_name": datasets.Value("string"),
            "image": datasets.Image(),
            "conversation": datasets.Value("string"),
            "origin_dataset": datasets.Value("string"),
            "idx": datasets.Value("int64"),
            "image_path": datasets.Value("string"),
        }
    )


def test_unimm_parquet_loads_with_pil_images_and_joins_the_release(demo, demo_chats, tmp_path):
    import datasets

    out = tmp_path / "unimm.parquet"
    export(demo, "unimm-parquet", out)
    ours = datasets.load_dataset("parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "c"))
    assert ours.features == release_features() and ours.num_rows == 24
    by_path = {c.image_file: (c, img) for c, img in demo_chats.values()}
    for row in ours:
        chat, image = by_path[row["image_path"]]
        assert isinstance(row["image"], Image.Image)
        assert row["image"].convert("RGB").tobytes() == rgb_of(image).tobytes()
        conv = json.loads(row["conversation"])
        assert conv[0]["from"] == "human" and conv[0]["value"].startswith(IMAGE_PLACEHOLDER + "\n")
        assert [c["from"] for c in conv] == ["human", "gpt"] * (len(conv) // 2)
        assert row["origin_dataset"] == ",".join(chat.sources) and row["ds_name"] == "unimm-chat"
    assert sorted(ours["idx"]) == list(range(24))

    buf = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(buf, format="JPEG")
    release = datasets.Dataset.from_dict(
        {
            "ds_name": ["unimm-chat"],
            "image": [{"bytes": buf.getvalue(), "path": None}],
            "conversation": [
                json.dumps([{"from": "human", "value": "<image>\nHi?"}, {"from": "gpt", "value": "Hi."}])
            ],
            "origin_dataset": ["vqa_chat_20230628"],
            "idx": [0],
            "image_path": ["COCO_train2014_000000000009.jpg"],
        },
        features=release_features(),
    )
    both = datasets.concatenate_datasets([release, ours])
    assert both.num_rows == 25 and isinstance(both[24]["image"], Image.Image)


# -- Muffin TSV -------------------------------------------------------------------------------


def read_muffin(root: Path) -> muffin.SingleDataSourceDataset:
    data_dir, names = muffin.gather_data_files_by_glob(str(root), "*.tsv")
    data = muffin.SingleDataSourceDataset("unimm-chat", data_dir, sorted(names))
    for name, size in zip(data.filenames, data.sizes, strict=True):
        tsv = muffin.TSVFile(str(root / name))  # the row count in the name is the file's
        assert len(tsv) == size
        tsv.close()
    return data


def test_muffin_tsv_loads_in_single_data_source_dataset(demo, demo_chats, tmp_path):
    out = tmp_path / "unimm-chat"
    export(demo, "muffin-tsv", out)
    assert sorted(p.name for p in out.glob("*.tsv")) == ["unimm_chat_0_24-24.tsv"]
    data = read_muffin(out)
    assert len(data) == 24
    by_path = {c.image_file: (c, img) for c, img in demo_chats.values()}
    for i in range(len(data)):
        item = data[i]
        chat, image = by_path[item["metainfo"]["image_id"]]
        assert item["image"].tobytes() == rgb_of(image).tobytes()
        # Muffin needed to fix nothing: <image> opens the first turn and only that one
        raw = json.loads(base64.b64decode(data.files[0][i][2]))
        assert item["conversations"] == raw
        assert [c["value"] for c in raw] == [t.content for t in chat.turns]
        assert item["metainfo"]["origin_dataset"] == ",".join(chat.sources)
        assert item["idx"] == str(i)
    data.close()


def test_muffin_tsv_rows_cross_file_borders(demo, demo_chats, tmp_path):
    res = export_muffin_tsv(demo, tmp_path / "m", rows_per_file=10)
    assert res.records == 24
    names = sorted(p.name for p in (tmp_path / "m").glob("*.tsv"))
    assert names == ["unimm_chat_0_10-10.tsv", "unimm_chat_10_20-10.tsv", "unimm_chat_20_24-4.tsv"]
    data = read_muffin(tmp_path / "m")
    assert sorted(data[i]["metainfo"]["image_id"] for i in range(len(data))) == sorted(
        c.image_file for c, _ in demo_chats.values()
    )
    data.close()


def test_muffin_tsv_refuses_shards_without_images(tmp_path):
    write_shards([make_chat("coco_000000000001", PAIRS)], tmp_path / "shards", ShardConfig())
    r = run_unimm(
        "export", "--shards", tmp_path / "shards", "--format", "muffin-tsv", "--out", tmp_path / "m"
    )
    assert r.returncode == 2 and "Muffin needs an image" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]


# -- Hugging Face save_to_disk ----------------------------------------------------------------


def test_hf_export_loads_from_disk(demo, demo_chats, tmp_path):
    import datasets

    export(demo, "hf", tmp_path / "hf")
    dd = datasets.load_from_disk(str(tmp_path / "hf"))
    assert isinstance(dd, datasets.DatasetDict) and list(dd) == ["train"]
    train = dd["train"]
    assert train.features == datasets.Features(
        {
            "id": datasets.Value("string"),
            "image_key": datasets.Value("string"),
            "image": datasets.Image(),
            "image_file": datasets.Value("string"),
            "messages": datasets.List(
                {"role": datasets.Value("string"), "content": datasets.Value("string")}
            ),
            "sources": datasets.List(datasets.Value("string")),
            "grounding_score": datasets.Value("float64"),
        }
    )
    assert sorted(train["id"]) == sorted(demo_chats)
    for row in train:
        chat, image = demo_chats[row["id"]]
        assert isinstance(row["image"], Image.Image)
        assert row["image"].convert("RGB").tobytes() == rgb_of(image).tobytes()
        assert [m["role"] for m in row["messages"]] == [t.role for t in chat.turns]
        assert not any(IMAGE_PLACEHOLDER in m["content"] for m in row["messages"])
        assert (row["image_key"], row["sources"]) == (chat.image_key, chat.sources)
        assert row["grounding_score"] == chat.grounding_score


# -- every format: verified first, atomic, never wipes a folder it did not write --------------

FORMATS = [("llava", "out.json"), ("unimm-parquet", "out.parquet"), ("muffin-tsv", "out"), ("hf", "out")]


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_damaged_shards_leave_nothing(demo, tmp_path, fmt, name):
    shards = tmp_path / "shards"
    shutil.copytree(demo, shards)
    tar = next(shards.glob("*.tar"))
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 1
    tar.write_bytes(bytes(data))
    exports = tmp_path / "exports"
    exports.mkdir()
    r = run_unimm("export", "--shards", shards, "--format", fmt, "--out", exports / name)
    assert r.returncode == 2 and "sha256 differs" in r.stderr, r.stderr
    assert list(exports.iterdir()) == []


@pytest.mark.parametrize(("fmt", "name", "flag"), [("llava", "l.json", "--images"), ("hf", "hf", "--out")])
def test_a_folder_not_written_by_export_is_never_replaced(demo, tmp_path, fmt, name, flag):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    args = ["--out", tmp_path / name, "--images", mine] if flag == "--images" else ["--out", mine]
    r = run_unimm("export", "--shards", demo, "--format", fmt, *args)
    assert r.returncode == 2 and "not written by `unimm export`" in r.stderr, r.stderr
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]


def test_rerun_replaces_its_own_export(demo, tmp_path):
    export(demo, "muffin-tsv", tmp_path / "m")
    (tmp_path / "m" / "unimm_chat_0_99-99.tsv").write_text("stale")
    export(demo, "muffin-tsv", tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").glob("*.tsv")) == ["unimm_chat_0_24-24.tsv"]


def test_images_flag_is_for_llava_only(demo, tmp_path):
    r = run_unimm(
        "export", "--shards", demo, "--format", "hf", "--out", tmp_path / "hf", "--images", tmp_path / "i"
    )
    assert r.returncode == 2 and "--images is for --format llava only" in r.stderr
    assert list(tmp_path.iterdir()) == []


# -- dataset cards ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "card_dir"),
    [
        ("llava", "llava.json", "."),
        ("unimm-parquet", "unimm.parquet", "."),
        ("muffin-tsv", "muffin", "muffin"),
        ("hf", "hf", "hf"),
    ],
)
def test_every_export_has_a_card_with_the_manifest_counts(demo, tmp_path, fmt, name, card_dir):
    from huggingface_hub import DatasetCard

    out = tmp_path / "exp"
    out.mkdir()
    export(demo, fmt, out / name)
    card_path = out / card_dir / "README.md"
    card = DatasetCard.load(card_path)
    assert fmt == "hf" or card.data.to_dict()["configs"]
    text = card_path.read_text()
    assert "| Dialogues | 24 |" in text and "CC BY 4.0" in text


def test_unimm_parquet_card_lets_load_dataset_read_the_folder(demo, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    out = tmp_path / "exp"
    out.mkdir()
    export(demo, "unimm-parquet", out / "unimm.parquet")
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 24 and isinstance(ds.features["image"], datasets.Image)


def test_a_readme_that_is_not_ours_is_left_alone(demo, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "README.md").write_text("my notes\n")
    export(demo, "llava", out / "llava.json")
    assert (out / "README.md").read_text() == "my notes\n"
    assert "| Dialogues | 24 |" in (out / "llava.README.md").read_text()
