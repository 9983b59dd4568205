"""Data path of the reference trainer: shard resolution, rendering, masking, truncation, streaming."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
import webdataset as wds
from PIL import Image

from unimm.errors import ConfigError, InputError
from unimm.schema import IMAGE_PLACEHOLDER, Chat, GeneratorInfo, Turn
from unimm.train.data import (
    SampleEncoder,
    ShardDataError,
    ShardStream,
    batches,
    check_shard_count,
    collate,
    make_loader,
    resolve_shards,
)
from unimm.train.template import IGNORE, ChatTemplate, pretrain_turns
from unimm.train.tokenizer import load_tokenizer

QUESTIONS = [
    "What is shown in this picture?",
    "Can you describe it in other words?",
    "Anything else worth noting?",
]


def coco_chats(realdata: Path) -> list[tuple[Chat, bytes]]:
    """The 80 real COCO-mini train images with their real captions as small 2-3 exchange dialogues."""
    ann = json.loads((realdata / "coco-mini/annotations/captions_train2017.json").read_text())
    caps: dict[int, list[str]] = {}
    for a in sorted(ann["annotations"], key=lambda a: a["id"]):
        caps.setdefault(a["image_id"], []).append(" ".join(a["caption"].split()))
    out = []
    for img in sorted(ann["images"], key=lambda i: i["id"]):
        key = f"coco_{img['id']:012d}"
        n = 2 + img["id"] % 2
        turns: list[Turn] = []
        for i, cap in enumerate(caps[img["id"]][:n]):
            q = QUESTIONS[i]
            turns += [
                Turn(role="user", content=f"{IMAGE_PLACEHOLDER}\n{q}" if i == 0 else q),
                Turn(role="assistant", content=cap),
            ]
        gen = GeneratorInfo(
            backend="template", model="fixture", prompt_version="test", prompt_fingerprint="0", request_id=key
        )
        chat = Chat(
            id=key,
            image_key=key,
            image_file=f"coco/train2017/{img['file_name']}",
            turns=turns,
            sources=["coco"],
            generator=gen,
        )
        out.append((chat, (realdata / "coco-mini/train2017" / img["file_name"]).read_bytes()))
    return out


def write_shards(folder: Path, items: list[tuple[Chat, bytes]], n_shards: int, repeat: int = 1) -> list[Path]:
    """Write `items` (x `repeat`, keys suffixed) round-robin into `n_shards` tars + manifest.json."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"shards-{i:06d}.tar" for i in range(n_shards)]
    writers = [wds.TarWriter(str(p)) for p in paths]
    counts = [0] * n_shards
    j = 0
    for r in range(repeat):
        for chat, jpg in items:
            key = chat.id if repeat == 1 else f"{chat.id}_r{r}"
            c = chat.model_copy(update={"id": key})
            writers[j % n_shards].write({"__key__": key, "jpg": jpg, "json": c.model_dump_json().encode()})
            counts[j % n_shards] += 1
            j += 1
    for w in writers:
        w.close()
    manifest = {
        "shards": [
            {"name": p.name, "samples": n, "bytes": p.stat().st_size, "sha256": ""}
            for p, n in zip(paths, counts, strict=True)
        ]
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return paths


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(None)


@pytest.fixture(scope="module")
def chats(realdata):
    return coco_chats(realdata)


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory, chats) -> Path:
    d = tmp_path_factory.mktemp("shards")
    write_shards(d, chats, 4)
    return d


def _known_dialogue() -> list[Turn]:
    return [
        Turn(role="user", content=f"{IMAGE_PLACEHOLDER}\nWhat is the man holding?"),
        Turn(role="assistant", content="He is holding a red umbrella."),
        Turn(role="user", content="Is it raining?"),
        Turn(role="assistant", content="Yes, the street looks wet."),
    ]


def test_labels_are_exactly_the_assistant_tokens(tok):
    tpl = ChatTemplate(tok, num_visual_tokens=9, max_len=512)
    enc = tpl.encode(_known_dialogue())
    ids, labels = enc.input_ids, enc.labels
    assert len(ids) == len(labels)
    img = [i for i, t in enumerate(ids) if t == tok.image_token_id]
    assert img == list(range(enc.image_start, enc.image_start + 9))
    assert all(labels[i] == IGNORE for i in img)
    # supervised runs are contiguous: one per assistant turn, each = content + <|im_end|>
    runs, cur = [], []
    for t, lab in zip(ids, labels, strict=True):
        if lab != IGNORE:
            assert lab == t
            cur.append(t)
        elif cur:
            runs.append(cur)
            cur = []
    assert [tok.decode(r) for r in runs] == [
        "He is holding a red umbrella.<|im_end|>",
        "Yes, the street looks wet.<|im_end|>",
    ]
    # the user text is present in the input and never supervised
    full = tok.decode(ids)
    assert "<|im_start|>user\n" in full and "What is the man holding?" in full and "Is it raining?" in full
    assert "<|im_start|>assistant\n" in full
    sup = tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE])
    assert "raining" not in sup and "holding?" not in sup and "assistant" not in sup


def test_placeholder_rules_name_record_and_field(tok):
    tpl = ChatTemplate(tok, num_visual_tokens=4, max_len=128)
    turns = _known_dialogue()
    twice = [turns[0], turns[1], Turn(role="user", content=f"{IMAGE_PLACEHOLDER} again"), turns[3]]
    with pytest.raises(InputError) as e:
        tpl.encode(twice, source="s-000000.tar", key="coco_1")
    assert (
        e.value.record == "coco_1" and e.value.field == "turns[0].content" and "s-000000.tar" in str(e.value)
    )
    with pytest.raises(InputError):
        tpl.encode([Turn(role="user", content="no image"), turns[1]], source="x.tar", key="k")


@pytest.mark.parametrize("max_len", range(20, 60, 3))
def test_truncation_never_cuts_image_tokens(tok, max_len):
    tpl = ChatTemplate(tok, num_visual_tokens=12, max_len=max_len)
    enc = tpl.encode(_known_dialogue())
    assert len(enc.input_ids) <= max_len and len(enc.labels) == len(enc.input_ids)
    assert enc.input_ids.count(tok.image_token_id) == 12
    assert enc.input_ids[enc.image_start : enc.image_start + 12] == [tok.image_token_id] * 12


def test_max_len_too_small_for_the_image_is_a_config_error(tok):
    with pytest.raises(ConfigError):
        ChatTemplate(tok, num_visual_tokens=64, max_len=40)


def test_pretrain_view_is_first_exchange(tok):
    turns = pretrain_turns(_known_dialogue())
    assert [t.role for t in turns] == ["user", "assistant"] and turns[
        1
    ].content == "He is holding a red umbrella."
    prompted = pretrain_turns(_known_dialogue(), "Describe the image.")
    assert prompted[0].content == f"{IMAGE_PLACEHOLDER}\nDescribe the image."


def test_resolve_glob_brace_folder_manifest(shard_dir):
    expect = [str(shard_dir / f"shards-{i:06d}.tar") for i in range(4)]
    assert resolve_shards(str(shard_dir / "*.tar")) == expect
    assert resolve_shards(str(shard_dir / "shards-{000000..000003}.tar")) == expect
    assert resolve_shards(str(shard_dir)) == expect
    assert resolve_shards(str(shard_dir / "manifest.json")) == expect
    with pytest.raises(InputError):
        resolve_shards(str(shard_dir / "nothing-*.tar"))
    with pytest.raises(InputError):
        resolve_shards(str(shard_dir / "shards-{000000..000009}.tar"))


def test_too_few_shards_for_readers():
    with pytest.raises(ConfigError, match="2 shard"):
        check_shard_count(["a", "b"], world_size=2, workers=2, resampled=False)
    check_shard_count(["a", "b"], world_size=2, workers=2, resampled=True)


def test_encoder_and_collate(tok, shard_dir):
    tpl = ChatTemplate(tok, num_visual_tokens=16, max_len=96)
    enc = SampleEncoder(tpl, image_size=64)
    raw = next(iter(wds.WebDataset(str(shard_dir / "shards-000000.tar"), shardshuffle=False)))
    a = enc(raw)
    assert a["pixel_values"].shape == (3, 64, 64) and a["pixel_values"].dtype == torch.uint8
    short = dict(a, input_ids=a["input_ids"][:30], labels=a["labels"][:30], key="short")
    b = collate([a, short], tok.pad_id, tok.image_token_id)
    assert b["input_ids"].shape == (2, len(a["input_ids"]))
    assert b["attention_mask"][1].sum() == 30 and (b["labels"][1, 30:] == IGNORE).all()
    assert (b["input_ids"][1, 30:] == tok.pad_id).all()
    assert b["image_mask"].sum(1).tolist() == [16, 16]


def test_stream_epoch_covers_every_sample_once_and_is_deterministic(tok, shard_dir):
    enc = SampleEncoder(ChatTemplate(tok, 16, 96), image_size=32)
    urls = resolve_shards(str(shard_dir))
    keys = [
        k for b in islice_batches(ShardStream(urls, enc, 8, seed=3, shuffle_buffer=16), 10) for k in b["keys"]
    ]
    assert len(keys) == 80 and len(set(keys)) == 80
    again = [
        k for b in islice_batches(ShardStream(urls, enc, 8, seed=3, shuffle_buffer=16), 10) for k in b["keys"]
    ]
    assert keys == again
    other = [
        k for b in islice_batches(ShardStream(urls, enc, 8, seed=4, shuffle_buffer=16), 10) for k in b["keys"]
    ]
    assert other != keys and sorted(other) == sorted(keys)
    # resuming after 4 batches yields exactly the rest of the uninterrupted stream
    tail = [
        k
        for b in islice_batches(ShardStream(urls, enc, 8, seed=3, shuffle_buffer=16, consumed_batches=4), 6)
        for k in b["keys"]
    ]
    assert tail == keys[32:]


def islice_batches(stream: ShardStream, n: int) -> list[dict]:
    it = iter(stream)
    return [next(it) for _ in range(n)]


def test_stream_with_two_workers_resumes_exactly(tok, shard_dir):
    enc = SampleEncoder(ChatTemplate(tok, 16, 96), image_size=32)
    urls = resolve_shards(str(shard_dir))

    def take(consumed: int, n: int) -> list[list[str]]:
        it = batches(
            make_loader(ShardStream(urls, enc, 4, seed=1, shuffle_buffer=8, consumed_batches=consumed), 2)
        )
        return [next(it)["keys"] for _ in range(n)]

    full = take(0, 12)
    assert len({k for b in full[:10] for k in b}) == 40
    assert take(5, 7) == full[5:]


def test_bad_sample_in_worker_is_a_clear_error(tok, tmp_path, chats):
    chat, jpg = chats[0]
    bad = json.loads(chat.model_dump_json())
    bad["turns"][0]["role"] = "robot"
    with wds.TarWriter(str(tmp_path / "bad-000000.tar")) as w:
        w.write({"__key__": chat.id, "jpg": jpg, "json": json.dumps(bad).encode()})
    enc = SampleEncoder(ChatTemplate(tok, 16, 96), image_size=32)
    loader = make_loader(ShardStream([str(tmp_path / "bad-000000.tar")], enc, 1, shuffle_buffer=0), 1)
    with pytest.raises(ShardDataError, match=r"bad-000000.tar: record coco_\d+: field 'turns.0.role'"):
        next(batches(loader))


def test_undecodable_image_names_the_field(tok, chats):
    chat, _ = chats[0]
    enc = SampleEncoder(ChatTemplate(tok, 16, 96), image_size=32)
    with pytest.raises(InputError) as e:
        enc(
            {
                "__key__": chat.id,
                "__url__": "x.tar",
                "jpg": b"not a jpeg",
                "json": chat.model_dump_json().encode(),
            }
        )
    assert e.value.field == "jpg"
    buf = io.BytesIO()
    Image.new("RGB", (5, 3)).save(buf, "PNG")
    assert enc({"__key__": chat.id, "jpg": buf.getvalue(), "json": chat.model_dump_json().encode()})[
        "pixel_values"
    ].shape == (3, 32, 32)
