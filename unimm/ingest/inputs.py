"""Which official files are under the data root: those each ingest unit reads, and those a
source still needs (the up-front check of `unimm ingest`, which names every missing file and the
archive it comes from before anything is read). Only the source catalogue (`unimm.sources`) is
needed, so the command's own process checks its inputs, keys its units and estimates their
memory without importing an ingester (~0.2 s before its workers start)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from unimm.errors import MissingFilesError
from unimm.sources import SOURCE_SPECS, ExpectedFile, parse_sources, split_unit

Missing = list[tuple[str, str]]  # (path under the data root, archive URL)


def exists(data_root: Path, f: ExpectedFile) -> bool:
    return (Path(data_root) / f.path).is_file()


def present(source: str, data_root: Path, role: str | None = None) -> list[ExpectedFile]:
    """The source's files (of `role`) that are under the data root, in catalogue order."""
    return [
        f for f in SOURCE_SPECS[source].files() if (role is None or f.role == role) and exists(data_root, f)
    ]


def unit_files(source: str, part: str | None, data_root: Path) -> list[ExpectedFile]:
    """The present files that the source's own unit (`part` None) or one of its parts reads: a
    part its roles and the `shared` ones, the source's own unit every role no part reads."""
    spec = SOURCE_SPECS[source]
    apart = {r for roles in spec.parts.values() for r in roles}
    roles = set(spec.parts[part]) | set(spec.shared) if part else None
    return [
        f
        for f in present(source, data_root)
        if (f.role in roles if roles is not None else f.role not in apart)
    ]


def unit_bytes(unit: str, data_root: Path) -> int:
    """Bytes of the files an ingest unit reads."""
    return sum((Path(data_root) / f.path).stat().st_size for f in unit_files(*split_unit(unit), data_root))


def _listed(files: list[ExpectedFile]) -> Missing:
    return [(f.path, f.archive_url) for f in files]


def _captions(source: str, data_root: Path) -> Missing:
    """COCO: any annotation file will do; with none, the captions are asked for."""
    if present(source, data_root):
        return []
    return _listed([f for f in SOURCE_SPECS[source].files() if f.role == "captions"])


def _pairs(source: str, data_root: Path) -> Missing:
    """Question/annotation pairs (VQAv2, OK-VQA): none present -> all; a half pair -> the other half."""
    files = SOURCE_SPECS[source].files()
    found = present(source, data_root)
    if not found:
        return _listed(files)
    splits = {f.split for f in found}
    return _listed([f for f in files if f.split in splits and f not in found])


def _any_file(source: str, data_root: Path) -> Missing:
    """A-OKVQA: any split will do; with none, every file is asked for."""
    return [] if present(source, data_root) else _listed(SOURCE_SPECS[source].files())


def _vg(source: str, data_root: Path) -> Missing:
    """VG: image_data (the image sizes) and at least one annotation file; attributes are optional."""
    files = [f for f in SOURCE_SPECS[source].files() if not f.optional]
    found = present(source, data_root)
    if not found:
        return _listed(files)
    out = _listed([f for f in files if f.role == "image_data" and f not in found])
    if not any(f.role != "image_data" for f in found):
        out += _listed([f for f in files if f.role in ("regions", "qa")])
    return out


def _any_required(source: str, data_root: Path) -> Missing:
    """VisDial: any required split will do (test is read when present, never asked for)."""
    required = [f for f in SOURCE_SPECS[source].files() if not f.optional]
    return [] if any(exists(data_root, f) for f in required) else _listed(required)


_RULES: dict[str, Callable[[str, Path], Missing]] = {
    "coco": _captions,
    "vqav2": _pairs,
    "okvqa": _pairs,
    "aokvqa": _any_file,
    "vg": _vg,
    "visdial": _any_required,
}


def missing_files(source: str, data_root: Path) -> Missing:
    """Files (path, archive URL) that must be added before `source` can be read; [] if ready."""
    return _RULES[source](source, Path(data_root))


def check_inputs(data_root: Path, sources: list[str]) -> None:
    """Raise MissingFilesError listing every file (and its archive URL) a requested source still needs."""
    missing: Missing = []
    for name in parse_sources(list(sources)):
        missing += missing_files(name, data_root)
    if missing:
        raise MissingFilesError(missing)


def present_sources(data_root: Path) -> list[str]:
    """Sources whose folder exists under the data root, in canonical order."""
    return [name for name in SOURCE_SPECS if (Path(data_root) / name).is_dir()]
