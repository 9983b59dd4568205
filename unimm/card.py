"""Dataset cards: README.md with Hugging Face card metadata beside every shard set and export.

The YAML header is what `datasets` and the Hub read: licence, tasks, size, `configs` (which files
hold the data) and `dataset_info.features` (declared column types, so a loader never has to guess
them from the first rows). The body states what the manifest records: counts, sources and their
licences, rounds per dialogue, generators and prompt fingerprints, filters with their rejection
counts, decontamination, and how to load the files.

Feature lists use the card's YAML form (`- name: x` + `dtype:` / `struct:` / `list:`), the
form `datasets.Features._from_yaml_list` reads; the shard sample's are derived from ShardSample.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from unimm.schema import ShardSample
from unimm.workdir import atomic_path

if TYPE_CHECKING:  # unimm.shards imports this module: no runtime import back
    from unimm.shards.manifest import Manifest

CARD_NAME = "README.md"
WRITTEN_BY = "written by unimm"  # how a card of ours is told from someone else's README.md

Feature = dict[str, Any]  # one `- name: ...` entry of a card's feature list


@dataclass(frozen=True)
class SourceTerms:
    """Where a source is published and the terms of its annotations and of its images."""

    name: str
    url: str
    annotations: str
    images: str


# Checked against each publisher's own statement: COCO and VQA terms-of-use pages, the Visual
# Genome card, the A-OKVQA maintainers (allenai/aokvqa#10, which also names OK-VQA's CC BY 4.0
# as stated in its JSON files). A-OKVQA's repository code is Apache 2.0; its data is CC BY 4.0.
# Visual Dialog: CC BY 4.0 as the dataset's mirrors state it (visualdialog.org could not be read
# from here); its train pictures are COCO's, its val/test pictures Flickr's.
SOURCE_TERMS: dict[str, SourceTerms] = {
    "coco": SourceTerms(
        "COCO",
        "https://cocodataset.org/#termsofuse",
        "CC BY 4.0",
        "Flickr Terms of Use; each image keeps the Flickr licence its COCO annotation file names",
    ),
    "vqav2": SourceTerms(
        "VQAv2", "https://visualqa.org/terms.html", "CC BY 4.0", "COCO images (Flickr Terms of Use)"
    ),
    "okvqa": SourceTerms(
        "OK-VQA", "https://okvqa.allenai.org", "CC BY 4.0", "COCO images (Flickr Terms of Use)"
    ),
    "aokvqa": SourceTerms(
        "A-OKVQA",
        "https://allenai.org/project/a-okvqa/home",
        "CC BY 4.0 (the allenai/aokvqa code: Apache 2.0)",
        "COCO 2017 images (Flickr Terms of Use)",
    ),
    "vg": SourceTerms(
        "Visual Genome",
        "https://visualgenome.org",
        "CC BY 4.0",
        "Flickr images (from YFCC100M and COCO), Flickr Terms of Use",
    ),
    "visdial": SourceTerms(
        "Visual Dialog",
        "https://visualdialog.org/data",
        "CC BY 4.0",
        "train: COCO 2014 images; val/test: Flickr images (Flickr Terms of Use)",
    ),
}


@dataclass(frozen=True)
class FileFormat:
    """How `datasets` reads one output format: its packaged builder (None: `load_from_disk`),
    the builder options the files need, and whether they lack a header row (then the column
    names are the declared features')."""

    builder: str | None
    options: dict[str, str] = field(default_factory=dict)
    headerless: bool = False


# Keyed like `unimm export --format` (plus the shards' own webdataset).
FORMATS: dict[str, FileFormat] = {
    "webdataset": FileFormat("webdataset"),
    "llava": FileFormat("json"),
    "unimm-parquet": FileFormat("parquet"),
    "muffin-tsv": FileFormat("csv", {"sep": "\t"}, headerless=True),
    "hf": FileFormat(None),
}


def builder_options(fmt: str, features: list[Feature] | None) -> dict[str, Any]:
    """The options a `datasets` builder needs to read `fmt` files with these columns."""
    f = FORMATS[fmt]
    if f.headerless and features:
        return {**f.options, "column_names": [x["name"] for x in features]}
    return dict(f.options)


_DTYPES: dict[Any, str] = {str: "string", int: "int64", float: "float64", bool: "bool"}


def feature_type(annotation: Any) -> Feature:
    """The card feature type of a pydantic field annotation (without its name).

    Only types with one column type qualify: an optional or union field has none (a loader that
    sees it null in the first rows types it null), so it raises TypeError."""
    origin = get_origin(annotation)
    if origin is Literal and all(isinstance(a, str) for a in get_args(annotation)):
        return {"dtype": "string"}
    if annotation in _DTYPES:
        return {"dtype": _DTYPES[annotation]}
    if origin is list:
        inner = feature_type(get_args(annotation)[0])
        # the card's short forms: `list: string`, `list: [fields]`
        return {"list": inner.get("dtype") or inner.get("struct") or inner}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"struct": model_features(annotation)}
    if origin in (Union, types.UnionType):
        raise TypeError(f"{annotation!r} is optional or a union: it has no single feature type")
    raise TypeError(f"no card feature type for {annotation!r}")


def model_features(model: type[BaseModel]) -> list[Feature]:
    """The card feature list of a pydantic model, one entry per field in declaration order."""
    return [{"name": name, **feature_type(f.annotation)} for name, f in model.model_fields.items()]


def webdataset_features(extensions: list[str]) -> list[Feature]:
    """The columns `datasets`' webdataset loader yields for shards whose samples hold
    `extensions`: the key, the shard URL, the ShardSample `json` and the image members."""
    members = [
        {"name": ext, "struct": model_features(ShardSample)}
        if ext == "json"
        else {"name": ext, "dtype": "image"}
        for ext in extensions  # the writer ships json + the image's own extension, nothing else
    ]
    return [{"name": "__key__", "dtype": "string"}, {"name": "__url__", "dtype": "string"}, *members]


def size_category(n: int) -> str:
    """The Hub's size_categories bucket of `n` rows (n<1K, 1K<n<10K, ... 1B<n<10B, n>1T)."""
    bounds = [(10**3, "1K"), (10**4, "10K"), (10**5, "100K"), (10**6, "1M"), (10**7, "10M")]
    bounds += [(10**8, "100M"), (10**9, "1B"), (10**10, "10B"), (10**11, "100B"), (10**12, "1T")]
    if n < bounds[0][0]:
        return "n<1K"
    for (_, lo), (hi, up) in zip(bounds, bounds[1:], strict=False):
        if n < hi:
            return f"{lo}<n<{up}"
    return "n>1T"


def card_metadata(
    manifest: Manifest,
    fmt: str,
    data_files: list[str] | None,
    features: list[Feature] | None,
    num_rows: int,
) -> dict[str, Any]:
    """The YAML header: licence, tasks, size, and (when known) configs and declared features."""
    meta: dict[str, Any] = {
        # sources under different terms and images under their owners' (some non-commercial):
        # no single SPDX licence covers the whole, the body lists each
        "license": "other",
        "license_name": "unimm-sources",
        "pretty_name": _title(manifest),
        "language": ["en"],
        "task_categories": ["visual-question-answering", "image-to-text"],
        "tags": ["multimodal", "visual-instruction-tuning", "dialogue", "synthetic", "unimm", fmt],
        "size_categories": [size_category(num_rows)],
    }
    if data_files and FORMATS[fmt].builder:
        options = builder_options(fmt, features)
        meta["configs"] = [
            {"config_name": "default", "data_files": [{"split": "train", "path": data_files}], **options}
        ]
    if features is not None:
        # no `splits`: datasets ignores the whole block unless it also names the split's Arrow
        # bytes, which are only known once a loader has built it
        meta["dataset_info"] = {"config_name": "default", "features": features}
    return meta


def _title(manifest: Manifest) -> str:
    return f"unimm {manifest.build_config.get('name') or manifest.prefix}"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows])


def _settings(summary: str, cfg: Any) -> str:
    body = yaml.safe_dump(cfg, sort_keys=True, allow_unicode=True).rstrip()
    return f"<details><summary>{summary}</summary>\n\n```yaml\n{body}\n```\n\n</details>"


def _summary_section(manifest: Manifest, fmt: str, data_files: list[str] | None, num_rows: int) -> str:
    rows: list[list[Any]] = [["Dialogues", manifest.total_samples]]
    if num_rows != manifest.total_samples:
        rows.append(["Rows", num_rows])
    rows.append(["Format", f"{fmt} ({', '.join(f'`{f}`' for f in data_files or []) or 'this folder'})"])
    rows.append(["Shards read", f"{len(manifest.shards)} ({manifest.total_bytes} bytes)"])
    rows.append(["Images", ", ".join(e for e in manifest.extensions if e != "json") or "none (JSON only)"])
    rounds = manifest.rounds_per_dialogue
    if rounds:
        total = sum(rounds.values())
        mean = sum(k * v for k, v in rounds.items()) / total
        rows.append(
            ["Question-answer rounds per dialogue", f"min {min(rounds)}, mean {mean:.2f}, max {max(rounds)}"]
        )
    out = "## Summary\n\n" + _table(["", ""], rows)
    if rounds:
        out += "\n\nDialogues by number of rounds:\n\n" + _table(
            ["Rounds", "Dialogues"],
            [[k, v] for k, v in sorted(rounds.items())],  # JSON keys sort as text
        )
    return out


def _sources_section(manifest: Manifest) -> str:
    rows = []
    for src, n in manifest.counts_by_source.items():
        t = SOURCE_TERMS.get(src)
        if t is None:
            rows.append([src, n, "unknown: check the source's own terms", "unknown"])
        else:
            rows.append([f"[{t.name}]({t.url})", n, t.annotations, t.images])
    return (
        "## Sources and licences\n\n"
        "The dialogues are derived from the annotations of these sources (a dialogue counts under each "
        "of its sources) and each source's terms apply to what is derived from it. The images are not "
        "the sources' to license: they stay under their owners' Flickr terms, some of them "
        "non-commercial. Text written by a generator model is also subject to that model's terms. "
        "Hence `license: other`.\n\n" + _table(["Source", "Dialogues", "Annotations licence", "Images"], rows)
    )


def _generation_section(manifest: Manifest) -> str:
    out = "## Generation\n\n"
    if manifest.generators:
        out += _table(
            ["Backend", "Model", "Prompt version", "Prompt fingerprint", "Dialogues"],
            [
                [g.backend, g.model, g.prompt_version, f"`{g.prompt_fingerprint}`", g.samples]
                for g in manifest.generators
            ],
        )
    else:
        out += "Prompt fingerprints: " + (", ".join(f"`{f}`" for f in manifest.prompt_fingerprints) or "none")
    build_fp = manifest.extra.get("prompt_fingerprint")
    if build_fp:
        out += f"\n\nPrompt set fingerprint of the build: `{build_fp}`."
    if manifest.build_config.get("generate"):
        out += "\n\n" + _settings("Generation settings", manifest.build_config["generate"])
    return out


def _filters_section(manifest: Manifest) -> str:
    reasons = manifest.rejects_by_reason
    out = "## Filters and rejections\n\n"
    if reasons:
        out += (
            "Dialogues rejected before shipping, by reason code, over every stage (generation "
            "failures, filter, dedup, decontamination, shards; a dialogue rejected for several "
            f"reasons counts under each): {sum(reasons.values())} in all.\n\n"
            + _table(["Reason", "Dialogues"], [[f"`{k}`", v] for k, v in reasons.items()])
        )
    else:
        out += "No dialogue was rejected."
    if manifest.steps:
        rows = [[name, c.input, c.output, c.rejected] for name, c in manifest.steps.items()]
        out += "\n\nRecords in and out of every pipeline step:\n\n" + _table(
            ["Step", "In", "Out", "Dropped"], rows
        )
    for stage in ("filter", "dedup"):
        if manifest.build_config.get(stage):
            out += "\n\n" + _settings(f"{stage.capitalize()} settings", manifest.build_config[stage])
    return out


def _decontam_section(manifest: Manifest) -> str:
    cfg = manifest.build_config.get("decontaminate")
    out = "## Decontamination\n\n"
    if cfg is None:
        return out + "Not recorded: these shards were not written by `unimm build`."
    files = cfg.get("eval_files") or []
    if not files:
        return out + "None: no evaluation set was checked, so this corpus may overlap any of them."
    rows = [
        [
            f.get("name") or Path(f["path"]).name,
            f.get("kind", "auto"),
            f.get("drop_images", True),
            f.get("drop_questions", True),
        ]
        for f in files
    ]
    dropped = {k: v for k, v in manifest.rejects_by_reason.items() if k.startswith("eval_")}
    out += (
        f"Dialogues on an evaluation image, or with a question sharing a {cfg.get('ngram')}-word n-gram "
        "with an evaluation question, were dropped.\n\n"
        + _table(["Evaluation file", "Kind", "Drops images", "Drops questions"], rows)
    )
    return out + "\n\nDropped: " + (", ".join(f"`{k}` {v}" for k, v in dropped.items()) or "none")


def _loading_section(
    manifest: Manifest, fmt: str, data_files: list[str] | None, features: list[Feature] | None
) -> str:
    f = FORMATS[fmt]
    if f.builder is None:
        code = ["import datasets", "", 'ds = datasets.load_from_disk("path/to/this/folder")']
    else:
        opts = "".join(f", {k}={v!r}" for k, v in builder_options(fmt, features).items())
        files = ["path/to/this/folder/" + p for p in data_files or ["..."]]
        code = [
            "from datasets import load_dataset",
            "",
            "# reads this card: its file list and declared column types",
            'ds = load_dataset("path/to/this/folder", split="train")',
            "# or the files alone (column types inferred)",
            f"ds = load_dataset({f.builder!r}, data_files={{'train': {files!r}}}, split='train'{opts})",
        ]
    out = "## Loading\n\n```python\n" + "\n".join(code) + "\n```"
    if fmt == "webdataset" and manifest.shards:
        last = len(manifest.shards) - 1
        url = f"path/to/this/folder/{manifest.prefix}-{{000000..{last:06d}}}.tar"
        out += (
            "\n\nWith the `webdataset` library:\n\n```python\nimport webdataset as wds\n\n"
            f'ds = wds.WebDataset("{url}", shardshuffle=False).decode("pil")\n```'
        )
    return out


def _flat(features: list[Feature], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for f in features:
        name = prefix + f["name"]
        if "struct" in f:
            rows += _flat(f["struct"], name + ".")
        elif isinstance(f.get("list"), list):
            rows.append((name, "list of struct"))
            rows += _flat(f["list"], name + "[].")
        elif "list" in f:
            rows.append((name, f"list of {f['list']}"))
        else:
            rows.append((name, str(f.get("dtype"))))
    return rows


def _fields_section(features: list[Feature], fmt: str) -> str:
    # the sample model's field descriptions are where its sentinels for "unknown" are explained
    notes = (
        {f"json.{n}": f.description or "" for n, f in ShardSample.model_fields.items()}
        if fmt == "webdataset"
        else {}
    )
    rows = [[f"`{n}`", t, notes.get(n, "")] for n, t in _flat(features)]
    return "## Fields\n\n" + _table(["Field", "Type", "Meaning"], rows)


def render_card(
    manifest: Manifest,
    *,
    fmt: str = "webdataset",
    data_files: list[str] | None = None,
    features: list[Feature] | None = None,
    num_rows: int | None = None,
) -> str:
    """README.md text for `manifest`'s corpus stored as `fmt` (see write_card)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown card format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "webdataset":
        data_files = data_files or [f"{manifest.prefix}-*.tar"]
        features = features if features is not None else webdataset_features(manifest.extensions)
    rows = manifest.total_samples if num_rows is None else num_rows
    header = yaml.safe_dump(
        card_metadata(manifest, fmt, data_files, features, rows), sort_keys=False, allow_unicode=True
    )
    sections = [
        f"# {_title(manifest)}\n\nMultimodal instruction dialogues about images in the UniMM-Chat style, "
        f"{WRITTEN_BY} {manifest.tool_version}.",
        _summary_section(manifest, fmt, data_files, rows),
        _sources_section(manifest),
        _generation_section(manifest),
        _filters_section(manifest),
        _decontam_section(manifest),
        _loading_section(manifest, fmt, data_files, features),
    ]
    if features:
        sections.append(_fields_section(features, fmt))
    return f"---\n{header}---\n\n" + "\n\n".join(sections) + "\n"


def write_card(
    folder: Path,
    manifest: Manifest,
    *,
    fmt: str = "webdataset",
    data_files: list[str] | None = None,
    features: list[Feature] | None = None,
    num_rows: int | None = None,
    name: str = CARD_NAME,
) -> Path:
    """Write `folder/README.md` (atomically) describing `manifest`'s corpus as stored there.

    fmt: a FORMATS key ("webdataset", or an export: "llava", "unimm-parquet", "muffin-tsv", "hf").
    data_files: globs of the data files relative to `folder` (the card's `configs`; webdataset:
    `<prefix>-*.tar` by default). features: the declared columns in the card's YAML form
    (webdataset: derived from ShardSample by default; others: none declared unless given).
    num_rows: rows a loader yields, when not one per dialogue. name: the card's file name (only
    README.md is read by `datasets`). Returns the card's path."""
    text = render_card(manifest, fmt=fmt, data_files=data_files, features=features, num_rows=num_rows)
    path = Path(folder) / name
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
