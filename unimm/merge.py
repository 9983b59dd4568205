"""Merge: gather every normalised annotation of one physical image into one `MergedImage` row.

Input: `work/ingest/<source>.parquet` (and `<source>.<part>.parquet` of a source ingested in
parts) + `<source>.images.parquet` for the chosen sources, each sorted by the partition hash of its
image keys (`keys.partition_hash`).
Output, per partition: `work/merged/part-NNNNN.parquet` (rows = `schema.MergedImage`, sorted by
key) and `work/merged/summary-NNNNN.json`; `read_summary` adds the partitions' summaries up.

A partition is a range of the hash, so it reads only its own row groups of every ingest table:
partitions merge one by one in bounded memory, or side by side in the pipeline's workers, and
the corpus is never held whole.

Exact duplicate texts across (or within) sources collapse into one item whose `sources` and
`source_ids` lists keep every provenance (`sources[i]` is the source of `source_ids[i]`), so no
annotation is lost or counted twice. Collapsed objects join their names, synsets and attributes
(first-seen order) and are a crowd if any of them is; a collapsed QA is difficult if any is.
Dialogs (VisDial) are never collapsed: each is one conversation, kept whole with its rounds in
order.
Order is deterministic: source order of `SOURCES`, then the order of the source files. All of it
is polars expressions over whole columns; nothing loops over rows in Python.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import msgspec
import polars as pl
from pydantic import BaseModel, Field

from unimm import handoff, workdir
from unimm.errors import ConfigError, InputError, MissingStageOutputError
from unimm.gcpolicy import bulk_parse
from unimm.ingest.tablefile import check_ingest_table, read_ingest_range, scan_ingest_table
from unimm.keys import IMAGE_NUMBER, IMAGES_PER_PARTITION, PARTITION_HASH, partition_range
from unimm.pipeline.layout import Layout
from unimm.schema import KINDS, SOURCES, ImageFile, MergedImage
from unimm.sources import SOURCE_SPECS, source_units
from unimm.structs import error_location, list_decoder
from unimm.tables import INGEST_ANNOTATION_SCHEMA, INGEST_IMAGE_SCHEMA, MERGED_IMAGE_SCHEMA

_RANK = {s: i for i, s in enumerate(SOURCES)}
# A partition's frames fit in memory many times over: polars' in-memory engine runs its group-bys
# and joins ~30% faster than the streaming default.
_ENGINE = "in-memory"
_ITEM_KINDS = {
    "caption": "captions",
    "qa": "qas",
    "region": "regions",
    "object": "objects",
    "dialog": "dialogs",
}


class MergeConfig(BaseModel):
    """Options of the merge stage (`merge:` in a pipeline config)."""

    sources: list[str] | None = Field(None, description="Sources to merge; default: every ingested source.")
    require: list[str] = Field(
        default_factory=list, description="Keep only images annotated by all of these."
    )
    min_sources: int = Field(1, ge=1, description="Keep only images annotated by at least this many sources.")
    partitions: int = Field(
        0,
        ge=0,
        description=f"Output partitions; 0 = one per ~{IMAGES_PER_PARTITION:,} images (counted "
        "before `require` and `min_sources`).",
    )


class Combination(BaseModel):
    sources: str
    images: int


class MergeSummary(BaseModel):
    """What the merge saw and kept; written to merged/summary.json and printed by the CLI."""

    sources: list[str]
    images_total: int
    images_kept: int
    partitions: int
    by_source_count: dict[int, int] = Field(description="Images (before filtering) by number of sources.")
    combinations: list[Combination] = Field(description="Images (before filtering) by exact source set.")
    images_with_3plus_kinds: int = Field(description="Images with >= 3 annotation types (UniMM-Chat's rule).")
    annotations_in: dict[str, int]
    items_out: dict[str, int]
    duplicates_collapsed: dict[str, int]
    orphan_rationales: int

    @classmethod
    def combine(cls, parts: list[MergeSummary]) -> MergeSummary:
        """The corpus summary of the partitions' summaries (each counts only its own images)."""

        def add(field: str) -> Counter:
            total: Counter = Counter()
            for p in parts:
                total.update(getattr(p, field))
            return total

        combos = add("combinations_dict")
        kinds = {k: i for i, k in enumerate(KINDS)}
        return cls(
            sources=parts[0].sources,
            images_total=sum(p.images_total for p in parts),
            images_kept=sum(p.images_kept for p in parts),
            partitions=len(parts),
            by_source_count=dict(sorted(add("by_source_count").items())),
            combinations=[
                Combination(sources=c, images=n)
                for c, n in sorted(combos.items(), key=lambda x: (-x[1], x[0]))
            ],
            images_with_3plus_kinds=sum(p.images_with_3plus_kinds for p in parts),
            annotations_in=dict(sorted(add("annotations_in").items())),
            items_out=dict(sorted(add("items_out").items(), key=lambda x: kinds[x[0]])),
            duplicates_collapsed=dict(sorted(add("duplicates_collapsed").items(), key=lambda x: kinds[x[0]])),
            orphan_rationales=sum(p.orphan_rationales for p in parts),
        )

    @property
    def combinations_dict(self) -> dict[str, int]:
        return {c.sources: c.images for c in self.combinations}


def _norm_text(col: str) -> pl.Expr:
    """Key for 'exact duplicate' text: case, surrounding whitespace, doubled spaces and a final
    period ignored. Literal operations only: a regex here costs 5x at 8M rows."""
    return pl.col(col).str.to_lowercase().str.replace_all("  ", " ", literal=True).str.strip_chars(" \t\n.")


def _bbox_keys() -> list[pl.Expr]:
    """The four box numbers as group keys (a string key built per row costs 8x more)."""
    return [pl.col("bbox").list.get(i, null_on_oob=True) for i in range(4)]


def _any(col: str) -> pl.Expr:
    """A flag of collapsed duplicates: true if any says so, null only if none knows (max of bools)."""
    return pl.col(col).max()


def _union(col: str) -> pl.Expr:
    """The lists of collapsed duplicates joined, repeats dropped, first-seen order kept."""
    return pl.col(col).list.explode(keep_nulls=False, empty_as_null=False).unique(maintain_order=True)


def _load(work: Path, sources: list[str], hashes: tuple[int, int]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The annotations and image refs of the partition whose hashes are `hashes` ([lo, hi)),
    each table read from that range's row groups only."""

    def read(path: Path, s: str, schema: pl.Schema) -> pl.LazyFrame:
        return (
            read_ingest_range(path, schema, s, hashes)
            .lazy()
            .drop(PARTITION_HASH)
            .with_columns(pl.lit(_RANK[s], pl.UInt8).alias("_rank"))
        )

    lay = Layout(work)
    ann = pl.concat(
        [
            read(table, s, INGEST_ANNOTATION_SCHEMA).drop("split").rename({IMAGE_NUMBER: "_img"})
            for s in sources
            for table in annotation_tables(lay, s)
        ],
        how="vertical_relaxed",
    )
    imgs = pl.concat(
        [read(lay.ingest_images(s), s, INGEST_IMAGE_SCHEMA) for s in sources], how="vertical_relaxed"
    )
    # vertical concat keeps source order then file order (each kind comes from one table of its
    # source): the deterministic order items keep
    return ann, imgs


def _provenance() -> list[pl.Expr]:
    return [pl.col("source").alias("sources"), pl.col("source_id").alias("source_ids")]


def _collapse(ann: pl.LazyFrame, kind: str, extra_keys: list[pl.Expr], fields: list[pl.Expr]) -> pl.LazyFrame:
    """Collapse exact duplicates of one kind within an image, keeping every provenance."""
    return (
        ann.filter(pl.col("kind") == kind)
        .with_columns(_norm_text("text").alias("_k"), *[e.alias(f"_k{i}") for i, e in enumerate(extra_keys)])
        .group_by(["_img", "_k", *[f"_k{i}" for i in range(len(extra_keys))]], maintain_order=True)
        .agg(*fields, *_provenance())
        .drop(["_k", *[f"_k{i}" for i in range(len(extra_keys))]])
    )


def _per_image(items: pl.LazyFrame, name: str) -> pl.DataFrame:
    # Within a group polars keeps row order, which is all that matters: images are sorted later.
    # Collected one kind at a time so that their transient memory does not add up.
    cols = [c for c in items.collect_schema().names() if c != "_img"]
    return items.group_by("_img").agg(pl.struct(cols).alias(name)).collect(engine=_ENGINE)


def build_merged(
    work: Path, sources: list[str], hashes: tuple[int, int]
) -> tuple[pl.DataFrame, dict[str, int], int]:
    """The ingested annotations of `sources` whose partition hash is in `hashes` -> one row per
    image (MergedImage columns).

    Returns the frame, the count of input annotations by kind, and the orphan rationale count.
    """
    # A partition's rows are read once: each query below would otherwise scan them again.
    ann, imgs = (frame.collect(engine=_ENGINE).lazy() for frame in _load(work, sources, hashes))

    counts_df = ann.group_by("kind").len().collect(engine=_ENGINE)
    counts = dict(zip(counts_df["kind"].to_list(), counts_df["len"].to_list(), strict=True))
    captions = _collapse(ann, "caption", [], [pl.col("text").first()])
    qa_rows = ann.filter(pl.col("kind") == "qa")
    orphans = 0
    # Only A-OKVQA gives rationales: without any, the join and the orphan count are skipped
    # (~30 ms of a ~0.45 CPU-s partition of COCO, VQAv2 and VG).
    if counts.get("rationale"):
        rationale_rows = ann.filter(pl.col("kind") == "rationale")
        orphans = (
            rationale_rows.join(
                qa_rows, left_on=["source", "parent_id"], right_on=["source", "source_id"], how="anti"
            )
            .select(pl.len())
            .collect(engine=_ENGINE)
            .item()
        )
        rationales = rationale_rows.group_by(["source", "parent_id"], maintain_order=True).agg(
            pl.col("text").alias("rationales")
        )
        qa_rows = qa_rows.join(
            rationales,
            left_on=["source", "source_id"],
            right_on=["source", "parent_id"],
            how="left",
            maintain_order="left",
        )
    else:
        qa_rows = qa_rows.with_columns(pl.lit(None, dtype=pl.List(pl.Utf8)).alias("rationales"))
    qas = _collapse(
        qa_rows,
        "qa",
        [_norm_text("answer").fill_null("")],
        [
            pl.col("text").first().alias("question"),
            pl.col("answer").first(),
            pl.col("answers").list.explode(keep_nulls=False, empty_as_null=False),
            pl.col("choices").first(),
            pl.col("correct_choice").first(),
            pl.col("question_type").first(),
            pl.col("answer_type").first(),
            pl.col("rationales").list.explode(keep_nulls=False, empty_as_null=False),
            _any("difficult"),
        ],
    )
    regions = _collapse(ann, "region", _bbox_keys(), [pl.col("text").first(), pl.col("bbox").first()])
    objects = _collapse(
        ann,
        "object",
        _bbox_keys(),
        [
            pl.col("text").first().alias("name"),
            pl.col("bbox").first(),
            _any("iscrowd"),
            *[_union(c) for c in ("names", "synsets", "attributes")],
        ],
    )

    dialogs = ann.filter(pl.col("kind") == "dialog").select(
        "_img",
        pl.concat_list("source").alias("sources"),
        pl.concat_list("source_id").alias("source_ids"),
        pl.col("text").alias("caption"),
        "rounds",
    )

    files = (
        imgs.sort("_rank", "split", "file_name", nulls_last=True)
        .group_by("image_key", maintain_order=True)
        .agg(
            pl.struct(list(ImageFile.model_fields)).alias("files"),
            pl.col("coco_id").drop_nulls().first(),
            pl.col("vg_id").drop_nulls().first(),
            pl.col("width").drop_nulls().first(),
            pl.col("height").drop_nulls().first(),
        )
    )
    srcs = (
        ann.select("_img", "image_key", "source", "_rank")
        .unique(["_img", "source"])
        .sort("_rank")
        .group_by("_img")
        .agg(pl.col("image_key").first(), pl.col("source").alias("sources"))
        .sort("image_key")
        .collect(engine=_ENGINE)
    )

    # Images are put in key order before their items join them: left joins keep that order,
    # and sorting the joined frame would move every nested column once more.
    merged = srcs.lazy()
    items = {"captions": captions, "qas": qas, "regions": regions, "objects": objects, "dialogs": dialogs}
    for name, frame in items.items():
        merged = merged.join(_per_image(frame, name).lazy(), on="_img", how="left", maintain_order="left")
    merged = merged.join(files, on="image_key", how="left", maintain_order="left")

    empty = {
        n: pl.col(n).fill_null(pl.lit([], dtype=t))
        for n, t in merged.collect_schema().items()
        if n in (*items, "files")
    }
    df = (
        merged.with_columns(**empty)
        .select(list(MERGED_IMAGE_SCHEMA))  # MergedImage's columns, in its field order
        .collect(engine=_ENGINE)
    )
    return df, counts, orphans


def _kinds_count() -> pl.Expr:
    has_rationale = pl.col("qas").list.eval(pl.element().struct.field("rationales").list.len() > 0).list.any()
    return pl.sum_horizontal(
        pl.col("captions").list.len() > 0,
        pl.col("qas").list.len() > 0,
        has_rationale.fill_null(False),
        pl.col("regions").list.len() > 0,
        pl.col("objects").list.len() > 0,
        pl.col("dialogs").list.len() > 0,
    )


def summarise(df: pl.DataFrame) -> tuple[dict[int, int], list[Combination], int]:
    """Images by number of sources, by exact combination, and with >= 3 annotation types."""
    by_n = df.group_by(pl.col("sources").list.len().alias("n")).len().sort("n")
    combos = (
        df.group_by(pl.col("sources").list.join("+").alias("combo"))
        .len()
        .sort(["len", "combo"], descending=[True, False])
    )
    three = df.select((_kinds_count() >= 3).sum()).item()
    return (
        dict(zip(by_n["n"].to_list(), by_n["len"].to_list(), strict=True)),
        [Combination(sources=c, images=n) for c, n in combos.iter_rows()],
        int(three),
    )


def merged_sources(work: Path, cfg: MergeConfig) -> list[str]:
    """The sources to merge, checked: known, ingested by this unimm, and covering `require`."""
    lay = Layout(work)
    sources = _chosen_sources(lay, cfg)
    for s in sources:
        for path in (*annotation_tables(lay, s), lay.ingest_images(s)):
            if not path.exists():
                raise MissingStageOutputError(path, f"unimm ingest --sources {s}")
        for table in annotation_tables(lay, s):
            check_ingest_table(table, INGEST_ANNOTATION_SCHEMA, s)
        check_ingest_table(lay.ingest_images(s), INGEST_IMAGE_SCHEMA, s)
    return sources


def _chosen_sources(lay: Layout, cfg: MergeConfig) -> list[str]:
    """The sources `cfg` names (default: every ingested one), known and covering `require`."""
    available = [s for s in SOURCE_SPECS if lay.ingest_table(s).exists()]
    sources = list(cfg.sources) if cfg.sources else available
    if not sources:
        raise MissingStageOutputError(lay.ingest_table("<source>"), "unimm ingest")
    for s in [*sources, *cfg.require]:
        if s not in SOURCE_SPECS:
            raise ConfigError(f"unknown source {s!r}; choose from {', '.join(SOURCE_SPECS)}")
    not_merged = [s for s in cfg.require if s not in sources]
    if not_merged:
        raise ConfigError(
            f"--require {','.join(not_merged)} is not among the merged sources {','.join(sources)}"
        )
    return sources


def annotation_tables(lay: Layout, source: str) -> list[Path]:
    """The annotation tables of `source`: its own, and one per part ingested apart (see
    `SourceSpec.parts`). A part's table may be absent (tables of an older unimm held every part),
    a source's own may not: the pipeline's markers say whether each unit is current."""
    own, *parts = [lay.ingest_table(u) for u in source_units(source)]
    return [own, *(p for p in parts if p.exists())]


def partition_count(work: Path, cfg: MergeConfig) -> int:
    """`cfg.partitions`, else one partition per ~IMAGES_PER_PARTITION distinct images of the
    sources' image tables (small tables: this costs milliseconds)."""
    sources = merged_sources(work, cfg)
    if cfg.partitions:
        return cfg.partitions
    keys = pl.concat(
        [
            scan_ingest_table(Layout(work).ingest_images(s), INGEST_IMAGE_SCHEMA, s).select("image_key")
            for s in sources
        ]
    )
    images = keys.select(pl.col("image_key").n_unique()).collect().item()
    return max(1, math.ceil(images / IMAGES_PER_PARTITION))


def partition_id(partition: int) -> str:
    return f"{partition:05d}"


def merge_partition(work: Path, cfg: MergeConfig, partition: int, partitions: int) -> MergeSummary:
    """Merge one partition of `partitions`: write its records and its summary (each atomically)
    and remove partitions of an earlier, larger count."""
    # The tables were checked when the partitions were counted (partition_count), and each one's
    # mark is checked again as its range is read: checking them here read every table's
    # metadata once more per partition (~1.6 ms of ~0.77 s: a tidy-up, not a speed-up).
    sources = _chosen_sources(Layout(work), cfg)
    df, counts_in, orphans = build_merged(work, sources, partition_range(partition, partitions))
    by_n, combos, three = summarise(df)
    keep = pl.col("sources").list.len() >= cfg.min_sources
    for s in cfg.require:
        keep = keep & pl.col("sources").list.contains(s)
    kept = df.filter(keep) if cfg.min_sources > 1 or cfg.require else df

    def items(frame: pl.DataFrame) -> dict[str, int]:
        return {k: int(frame[col].list.len().sum() or 0) for k, col in _ITEM_KINDS.items()}

    items_all = items(df)
    summary = MergeSummary(
        sources=sources,
        images_total=df.height,
        images_kept=kept.height,
        partitions=partitions,
        by_source_count=by_n,
        combinations=combos,
        images_with_3plus_kinds=three,
        annotations_in={k: int(v) for k, v in sorted(counts_in.items())},
        items_out=items(kept),
        duplicates_collapsed={k: int(counts_in.get(k, 0)) - items_all[k] for k in items_all},
        orphan_rationales=int(orphans),
    )
    lay = Layout(work)
    pid = partition_id(partition)
    # Uncompressed: read back by the next steps of the work dir only. lz4 took 145 against 91 ms
    # to write a default partition (~10k images, 35 MB uncompressed, 15 MB lz4) and reading it
    # back was no faster. No statistics: a default partition is one row group, never skipped by
    # them.
    workdir.write_parquet_atomic(kept, lay.merged_part(pid), compression="uncompressed", statistics=False)
    with workdir.atomic_path(lay.merged_summary(pid)) as tmp:
        tmp.write_text(summary.model_dump_json(indent=2) + "\n")
    for stale in [*lay.merged_dir.glob("part-*.parquet"), *lay.merged_dir.glob("summary-*.json")]:
        if int(stale.stem.rsplit("-", 1)[1]) >= partitions:
            stale.unlink(missing_ok=True)
    return summary


def merge(work: Path, cfg: MergeConfig) -> MergeSummary:
    """The merge stage in this process, partition after partition (the pipeline runs the same
    `merge_partition`s as its units); returns the corpus summary."""
    parts = partition_count(work, cfg)
    return MergeSummary.combine([merge_partition(Path(work), cfg, p, parts) for p in range(parts)])


def merged_parts(work: Path) -> list[Path]:
    """The merged partition files, in order; an error naming the folder when there are none."""
    parts = sorted(Layout(work).merged_dir.glob("part-*.parquet"))
    if not parts:
        raise MissingStageOutputError(Layout(work).merged_dir / "part-*.parquet", "unimm merge")
    return parts


_ROW = "__unimm_row"


def read_partition(
    part: Path, *, n_rows: int | None = None, keys: set[str] | None = None
) -> list[MergedImage]:
    """The MergedImage records of one partition: all, the first `n_rows`, or those whose image is
    in `keys` (the other rows never leave polars), as MergedImage's msgspec twins
    (`unimm.structs`: same fields and checks, read by attribute like the model, ~6x faster to
    build). A row that does not decode is an InputError naming the partition, the record and
    the field.

    The last partition read whole is kept for the unit's next step (`unimm.handoff`): generate
    and filter of one partition run in one process, and the second read is then free."""
    cached = handoff.kept("merged", part)
    if cached is not None:
        if keys is not None:
            cached = [r for r in cached if r.image_key in keys]
        return cached[:n_rows] if n_rows is not None else cached
    records = _read_rows(part, n_rows, keys)
    if n_rows is None and keys is None:
        handoff.keep("merged", part, records)
    return records


def _read_rows(part: Path, n_rows: int | None, keys: set[str] | None) -> list[MergedImage]:
    lf = pl.scan_parquet(part).with_row_index(_ROW)  # errors name the row of the file
    if keys is not None:
        lf = lf.filter(pl.col("image_key").is_in(pl.Series(sorted(keys), dtype=pl.Utf8).implode()))
    if n_rows is not None:
        lf = lf.head(n_rows)
    df = lf.collect()
    # Rows go to msgspec as one JSON document, decoded in C: building a Python dict per row
    # first costs more than the decode itself.
    try:
        with bulk_parse():
            return list_decoder(MergedImage).decode(df.drop(_ROW).write_json())
    except msgspec.ValidationError as e:
        index, field, message = error_location(e)
        row = df[_ROW][index] if index is not None else None
        raise InputError(part, message, record=row, field=field) from None


def load_merged(parts: list[Path], keys: set[str]) -> dict[str, MergedImage]:
    """image key -> MergedImage for the images among `keys`, over the given partitions."""
    return {m.image_key: m for part in parts for m in read_partition(part, keys=keys)}


def file_names(record: MergedImage) -> list[str]:
    """Every file name the sources know one merged image by, in merge order, each once: the
    rule `image_files` applies to a table, on a record in memory."""
    return list(dict.fromkeys(f.file_name for f in record.files if f.file_name))


def image_files(parts: list[Path], keys: set[str] | None) -> dict[str, list[str]]:
    """image key -> every file name the sources know the image by (e.g. its 2014 and its 2017
    COCO name), in merge order, for the images among `keys` (None: every image). Two columns,
    not whole records."""
    if not parts or keys is not None and not keys:
        return {}
    scan = pl.scan_parquet(parts).select("image_key", "files")
    if keys is not None:
        scan = scan.filter(pl.col("image_key").is_in(list(keys)))
    df = scan.select(
        "image_key",
        pl.col("files")
        .list.eval(pl.element().struct.field("file_name").drop_nulls().unique(maintain_order=True))
        .alias("names"),
    ).collect()
    return dict(zip(df["image_key"].to_list(), df["names"].to_list(), strict=True))


def read_summary(work: Path) -> MergeSummary:
    """The corpus summary: the sum of the partitions' summaries."""
    lay = Layout(work)
    return MergeSummary.combine(
        [MergeSummary.model_validate_json(lay.merged_summary(pid).read_text()) for pid in lay.partitions()]
    )
