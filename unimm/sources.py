"""Catalogue of the official files of each source: where they sit under the data root and the
archive they are published in. Ingest uses it to name missing files and where to get them;
`unimm download` uses it to fetch and unpack.

Data root convention (`--data-root`, default `data/`), one folder per source:
    coco/annotations/captions_{train,val}{2014,2017}.json, coco/annotations/instances_*.json,
        images in coco/{train,val}{2014,2017}/
    vqav2/v2_OpenEnded_mscoco_{train,val}2014_questions.json, vqav2/v2_mscoco_{train,val}2014_annotations.json
    okvqa/OpenEnded_mscoco_{train,val}2014_questions.json, okvqa/mscoco_{train,val}2014_annotations.json
    aokvqa/aokvqa_v1p0_{train,val}.json
    vg/image_data.json, vg/region_descriptions.json, vg/question_answers.json, vg/objects.json,
        vg/attributes.json (optional), images in vg/VG_100K/ and vg/VG_100K_2/
    visdial/visdial_1.0_{train,val}.json, visdial/visdial_1.0_test.json (optional), images of
        val/test in visdial/VisualDialog_{val,test}2018/ (train images are COCO 2014's)
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_DATA_ROOT = "data"


@dataclass(frozen=True)
class Archive:
    """One officially published archive (or plain file) and what it yields under its source folder.

    size/sha256 are checked when known; publishers of these datasets give no checksums, so by
    default the size the server announces is checked, and a user may pin sha256 in a config.
    """

    url: str
    source: str
    members: tuple[str, ...]  # paths it yields, relative to the source folder
    kind: str = "annotations"  # or "images"
    size: int | None = None
    sha256: str | None = None
    strip_components: int = 0  # leading folders to drop when unpacking (like tar --strip-components)

    @property
    def filename(self) -> str:
        # Dropbox links end in `?dl=1`: the query is not part of the file's name
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]


@dataclass(frozen=True)
class ExpectedFile:
    """One official file, its role in its source and the split it holds.

    `optional` files are read when present and never reported missing (VG `attributes.json`).
    """

    source: str
    path: str  # relative to the data root
    # captions | instances | questions | annotations | combined | image_data | regions | qa | objects
    # | attributes | dialogs
    role: str
    split: str
    archive_url: str
    optional: bool = False


@dataclass(frozen=True)
class SourceSpec:
    """A source: its name, where it comes from and, for a source whose files take several
    times longer than the others' (they would run alone on one core at the end of the ingest),
    the `parts` ingested apart: part -> the file roles it reads, with the `shared` ones. Each
    part is a unit of work of its own with its own table (`source_units`)."""

    name: str
    title: str
    homepage: str
    archives: tuple[Archive, ...] = field(default_factory=tuple)
    parts: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    shared: tuple[str, ...] = ()

    def files(self) -> list[ExpectedFile]:
        return [f for f in EXPECTED_FILES if f.source == self.name]


_COCO = "http://images.cocodataset.org"
_VQA = "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa"
_OKVQA = "https://okvqa.allenai.org/static/data"
_AOKVQA = "https://prior-datasets.s3.us-east-2.amazonaws.com/aokvqa"
_VG = "https://homes.cs.washington.edu/~ranjay/visualgenome/data/dataset"
_VG_IMG = "https://cs.stanford.edu/people/rak248"
# visualdialog.org/data links each VisDial v1.0 file on Dropbox; `?dl=1` serves the file itself
_VISDIAL = "https://www.dropbox.com/s"

ARCHIVES: tuple[Archive, ...] = (
    Archive(
        f"{_COCO}/annotations/annotations_trainval2014.zip",
        "coco",
        tuple(f"annotations/{k}_{s}2014.json" for k in ("captions", "instances") for s in ("train", "val")),
    ),
    Archive(
        f"{_COCO}/annotations/annotations_trainval2017.zip",
        "coco",
        tuple(f"annotations/{k}_{s}2017.json" for k in ("captions", "instances") for s in ("train", "val")),
    ),
    *(
        Archive(f"{_COCO}/zips/{s}.zip", "coco", (f"{s}/",), kind="images")
        for s in ("train2014", "val2014", "train2017", "val2017")
    ),
    *(
        Archive(
            f"{_VQA}/v2_Questions_{S}_mscoco.zip", "vqav2", (f"v2_OpenEnded_mscoco_{s}2014_questions.json",)
        )
        for S, s in (("Train", "train"), ("Val", "val"))
    ),
    *(
        Archive(f"{_VQA}/v2_Annotations_{S}_mscoco.zip", "vqav2", (f"v2_mscoco_{s}2014_annotations.json",))
        for S, s in (("Train", "train"), ("Val", "val"))
    ),
    *(
        Archive(f"{_OKVQA}/{name}.zip", "okvqa", (name,))
        for name in (
            "OpenEnded_mscoco_train2014_questions.json",
            "OpenEnded_mscoco_val2014_questions.json",
            "mscoco_train2014_annotations.json",
            "mscoco_val2014_annotations.json",
        )
    ),
    Archive(
        f"{_AOKVQA}/aokvqa_v1p0.tar.gz",
        "aokvqa",
        ("aokvqa_v1p0_train.json", "aokvqa_v1p0_val.json", "aokvqa_v1p0_test.json"),
    ),
    *(
        Archive(f"{_VG}/{name}.zip", "vg", (name,))
        for name in (
            "image_data.json",
            "region_descriptions.json",
            "question_answers.json",
            "objects.json",
            "attributes.json",
        )
    ),
    Archive(f"{_VG_IMG}/VG_100K_2/images.zip", "vg", ("VG_100K/",), kind="images"),
    Archive(f"{_VG_IMG}/VG_100K_2/images2.zip", "vg", ("VG_100K_2/",), kind="images"),
    *(
        Archive(f"{_VISDIAL}/{key}/visdial_1.0_{s}.zip?dl=1", "visdial", (f"visdial_1.0_{s}.json",))
        for key, s in (("ix8keeudqrd8hn8", "train"), ("ibs3a0zhw74zisc", "val"), ("o7mucbre2zm7i5n", "test"))
    ),
    *(
        Archive(f"{_VISDIAL}/{key}/{name}.zip?dl=1", "visdial", (f"{name}/",), kind="images")
        for key, name in (
            ("twmtutniktom7tu", "VisualDialog_val2018"),
            ("mwlrg31hx0430mt", "VisualDialog_test2018"),
        )
    ),
)


def _archive_for(source: str, member: str) -> str:
    for a in ARCHIVES:
        if a.source == source and member in a.members:
            return a.url
    raise KeyError(f"{source}/{member}")


def _expected() -> tuple[ExpectedFile, ...]:
    out: list[ExpectedFile] = []
    for year in ("2014", "2017"):
        for s in ("train", "val"):
            for role in ("captions", "instances"):
                m = f"annotations/{role}_{s}{year}.json"
                out.append(ExpectedFile("coco", f"coco/{m}", role, f"{s}{year}", _archive_for("coco", m)))
    for s in ("train", "val"):
        for role, m in (
            ("questions", f"v2_OpenEnded_mscoco_{s}2014_questions.json"),
            ("annotations", f"v2_mscoco_{s}2014_annotations.json"),
        ):
            out.append(ExpectedFile("vqav2", f"vqav2/{m}", role, f"{s}2014", _archive_for("vqav2", m)))
        for role, m in (
            ("questions", f"OpenEnded_mscoco_{s}2014_questions.json"),
            ("annotations", f"mscoco_{s}2014_annotations.json"),
        ):
            out.append(ExpectedFile("okvqa", f"okvqa/{m}", role, f"{s}2014", _archive_for("okvqa", m)))
        m = f"aokvqa_v1p0_{s}.json"
        out.append(ExpectedFile("aokvqa", f"aokvqa/{m}", "combined", s, _archive_for("aokvqa", m)))
    for role, m in (
        ("image_data", "image_data.json"),
        ("regions", "region_descriptions.json"),
        ("qa", "question_answers.json"),
        ("objects", "objects.json"),
    ):
        out.append(ExpectedFile("vg", f"vg/{m}", role, "all", _archive_for("vg", m)))
    # per-object attributes (colours, materials): grounding uses them when present
    m = "attributes.json"
    out.append(ExpectedFile("vg", f"vg/{m}", "attributes", "all", _archive_for("vg", m), optional=True))
    # VisDial's test split is its benchmark's (the last round of each dialog is unanswered): read
    # when present, never required
    for s in ("train", "val", "test"):
        m = f"visdial_1.0_{s}.json"
        out.append(
            ExpectedFile(
                "visdial", f"visdial/{m}", "dialogs", s, _archive_for("visdial", m), optional=s == "test"
            )
        )
    return tuple(out)


EXPECTED_FILES: tuple[ExpectedFile, ...] = _expected()

SOURCE_SPECS: dict[str, SourceSpec] = {
    s.name: s
    for s in (
        SourceSpec(
            "coco",
            "COCO captions + instances (2014/2017)",
            "https://cocodataset.org/#download",
            tuple(a for a in ARCHIVES if a.source == "coco"),
        ),
        SourceSpec(
            "vqav2",
            "VQAv2",
            "https://visualqa.org/download.html",
            tuple(a for a in ARCHIVES if a.source == "vqav2"),
        ),
        SourceSpec(
            "okvqa",
            "OK-VQA",
            "https://okvqa.allenai.org/download.html",
            tuple(a for a in ARCHIVES if a.source == "okvqa"),
        ),
        SourceSpec(
            "aokvqa",
            "A-OKVQA v1.0",
            "https://github.com/allenai/aokvqa",
            tuple(a for a in ARCHIVES if a.source == "aokvqa"),
        ),
        SourceSpec(
            "vg",
            "Visual Genome v1.2",
            "https://homes.cs.washington.edu/~ranjay/visualgenome/api.html",
            tuple(a for a in ARCHIVES if a.source == "vg"),
            # Read with the QAs, the regions (0.61 GB, 5.4M rows: ~9 s) and the objects with
            # their attributes (0.28 GB, 1.3M objects listed twice: ~14 s) ran alone on one core
            # for seconds after the other sources finished. Every part joins its rows to
            # image_data's keys and sizes.
            parts={"regions": ("regions",), "objects": ("objects", "attributes")},
            shared=("image_data",),
        ),
        SourceSpec(
            "visdial",
            "Visual Dialog v1.0",
            "https://visualdialog.org/data",
            tuple(a for a in ARCHIVES if a.source == "visdial"),
        ),
    )
}


# The catalogue's names as help texts and messages spell them: `coco,vqav2,...`, `coco/, vqav2/, ...`
SOURCE_LIST = ",".join(SOURCE_SPECS)
SOURCE_FOLDERS = ", ".join(f"{s}/" for s in SOURCE_SPECS)


def source_units(source: str) -> list[str]:
    """The units of work that ingest `source`: the source itself, then `<source>.<part>` for each
    of its `parts`; each writes `ingest/<unit>.parquet`."""
    return [source, *(f"{source}.{part}" for part in SOURCE_SPECS[source].parts)]


def split_unit(unit: str) -> tuple[str, str | None]:
    """An ingest unit -> (source, part or None)."""
    source, _, part = unit.partition(".")
    return source, part or None


def parse_sources(text: str | list[str] | None) -> list[str]:
    """`coco,vqav2` -> ['coco', 'vqav2'] in canonical order; unknown names are a ConfigError."""
    from unimm.errors import ConfigError

    if text is None:
        return list(SOURCE_SPECS)
    items = text if isinstance(text, list) else text.split(",")
    names = [s.strip().lower() for s in items if s.strip()]
    unknown = [s for s in names if s not in SOURCE_SPECS]
    if unknown:
        raise ConfigError(f"unknown source(s) {', '.join(unknown)}; choose from {', '.join(SOURCE_SPECS)}")
    return [s for s in SOURCE_SPECS if s in names]
